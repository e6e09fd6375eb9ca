/* DATE and TIMESTAMP literals of filter predicates: 'YYYY-MM-DD' to days since 1970-01-01 and
 * 'YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]' to microseconds since 1970-01-01 00:00:00 (no time zone), the
 * physical forms of attrs/knn_attrs.h. Days come from the proleptic Gregorian calendar by the
 * era-of-400-years count (146097 days an era), so no table and no loop over years. Strict: four-digit
 * years 0001-9999, real days of real months (2024-02-30 is an error, as in DuckDB), at most six
 * fraction digits. */
#include <stddef.h>
#include <stdint.h>

#include "attrs/predicate_internal.h"

static int digits(const char *s, size_t n, size_t *at, size_t lo, size_t hi, int *out) {
    size_t k = 0;
    int v = 0;
    while (*at + k < n && k < hi && s[*at + k] >= '0' && s[*at + k] <= '9') v = v * 10 + (s[*at + k++] - '0');
    if (k < lo) return 0;
    *at += k;
    *out = v;
    return 1;
}

static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int month_days(int y, int m) {
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return len[m - 1] + (m == 2 && leap);
}

const char *knn_pred_datetime(const char *s, size_t n, int want_ts, int64_t *out) {
    size_t at = 0;
    while (at < n && s[at] == ' ') at++;
    while (n > at && s[n - 1] == ' ') n--;
    int y, mo, d, h = 0, mi = 0, se = 0;
    int64_t frac = 0;
    if (!digits(s, n, &at, 4, 4, &y) || at >= n || s[at++] != '-' || !digits(s, n, &at, 1, 2, &mo) || at >= n ||
        s[at++] != '-' || !digits(s, n, &at, 1, 2, &d))
        return "expected YYYY-MM-DD";
    if (y < 1) return "the year must be 0001 to 9999";
    if (mo < 1 || mo > 12) return "no such month";
    if (d < 1 || d > month_days(y, mo)) return "no such day in that month";
    if (at < n) {
        if (!want_ts) return "a DATE has no time of day; use TIMESTAMP '...' for one";
        if (s[at] != ' ' && s[at] != 'T') return "expected a space or T before the time";
        at++;
        if (!digits(s, n, &at, 1, 2, &h) || at >= n || s[at++] != ':' || !digits(s, n, &at, 2, 2, &mi))
            return "expected HH:MM after the date";
        if (at < n && s[at] == ':') {
            at++;
            if (!digits(s, n, &at, 2, 2, &se)) return "expected two digits of seconds";
            if (at < n && s[at] == '.') {
                at++;
                int k = 0;
                while (at < n && s[at] >= '0' && s[at] <= '9') {
                    if (++k > 6) return "at most six digits of fractional seconds";
                    frac = frac * 10 + (s[at++] - '0');
                }
                if (k == 0) return "expected digits after the decimal point";
                for (; k < 6; k++) frac *= 10;
            }
        }
        if (at < n) return "unexpected text after the time";
        if (h > 23 || mi > 59 || se > 59) return "no such time of day";
    }
    int64_t days = days_from_civil(y, mo, d);
    *out = want_ts ? days * KNN_PRED_DAY_US + ((int64_t)h * 3600 + mi * 60 + se) * 1000000 + frac : days;
    return NULL;
}
