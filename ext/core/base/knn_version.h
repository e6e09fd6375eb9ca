#ifndef KNN_VERSION_H
#define KNN_VERSION_H
#define KNN_VERSION "0.1.0"
#endif
