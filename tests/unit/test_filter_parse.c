/* common/filter_parse.c: the expression grammar and its mapping onto the
 * Filter tree, the JSON form (the same trees, byte for byte), every error
 * with its message, the limits, and hostile input. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/filter_parse.h"
#include "common/json.h"
#include "common/validate.h"
#include "tests/harness.h"

/* ---- a compact text form of a tree, for asserting its shape ----
 *   {must:[...] should:[...] not:[...]}   a filter (empty lists left out)
 *   f=[k:x,i:1,b:1]                      a match: keywords, integers, booleans
 *   f(gt:1,gte:2,lt:3,lte:4)             a range
 *   f?                                   exists */
typedef struct {
    char s[1 << 16];
    size_t n;
} dump_t;

__attribute__((format(printf, 2, 3)))
static void put(dump_t *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(d->s + d->n, sizeof d->s - d->n, fmt, ap);
    va_end(ap);
    if (k > 0) d->n += (size_t)k;
    if (d->n >= sizeof d->s) d->n = sizeof d->s - 1;
}

static void dump_filter(dump_t *d, const Metaembed__Filter *f);

static void dump_bounds(dump_t *d, const char *name, size_t n, const double *v, int *first) {
    for (size_t i = 0; i < n; i++) {
        put(d, "%s%s:%.17g", *first ? "" : ",", name, v[i]);
        *first = 0;
    }
}

static void dump_cond(dump_t *d, const Metaembed__Condition *c) {
    switch (c->condition_case) {
    case METAEMBED__CONDITION__CONDITION_MATCH: {
        const Metaembed__Match *m = c->match;
        put(d, "%s=[", m->field);
        const char *sep = "";
        for (size_t i = 0; i < m->n_keywords; i++, sep = ",") put(d, "%sk:%s", sep, m->keywords[i]);
        for (size_t i = 0; i < m->n_integers; i++, sep = ",") put(d, "%si:%lld", sep, (long long)m->integers[i]);
        for (size_t i = 0; i < m->n_booleans; i++, sep = ",") put(d, "%sb:%d", sep, (int)m->booleans[i]);
        put(d, "]");
        break;
    }
    case METAEMBED__CONDITION__CONDITION_RANGE: {
        const Metaembed__Range *r = c->range;
        int first = 1;
        put(d, "%s(", r->field);
        dump_bounds(d, "gt", r->n_gt, r->gt, &first);
        dump_bounds(d, "gte", r->n_gte, r->gte, &first);
        dump_bounds(d, "lt", r->n_lt, r->lt, &first);
        dump_bounds(d, "lte", r->n_lte, r->lte, &first);
        put(d, ")");
        break;
    }
    case METAEMBED__CONDITION__CONDITION_EXISTS: put(d, "%s?", c->exists); break;
    case METAEMBED__CONDITION__CONDITION_FILTER: dump_filter(d, c->filter); break;
    default: put(d, "<unset>"); break;
    }
}

static void dump_list(dump_t *d, const char *name, Metaembed__Condition **v, size_t n, int *first) {
    if (!n) return;
    put(d, "%s%s:[", *first ? "" : " ", name);
    for (size_t i = 0; i < n; i++) {
        if (i) put(d, ",");
        dump_cond(d, v[i]);
    }
    put(d, "]");
    *first = 0;
}

static void dump_filter(dump_t *d, const Metaembed__Filter *f) {
    int first = 1;
    put(d, "{");
    dump_list(d, "must", f->must, f->n_must, &first);
    dump_list(d, "should", f->should, f->n_should, &first);
    dump_list(d, "not", f->must_not, f->n_must_not, &first);
    put(d, "}");
}

/* The dump of what text parses to, or "ERR: message". */
static dump_t g_dump;
static char g_err[512];
static const char *shape_n(const char *text, size_t len) {
    Metaembed__Filter *f = (Metaembed__Filter *)1;
    g_err[0] = 0;
    g_dump.n = 0;
    g_dump.s[0] = 0;
    int rc = me_filter_parse(text, len, &f, g_err, sizeof g_err);
    if (rc) {
        if (f != NULL) return "ERR: *out not cleared";
        put(&g_dump, "ERR%d: %s", rc, g_err);
        return g_dump.s;
    }
    dump_filter(&g_dump, f);
    me_filter_free(f);
    return g_dump.s;
}
static const char *shape(const char *text) { return shape_n(text, strlen(text)); }

#define ASSERT_SHAPE(text, want) ASSERT_STREQ(shape(text), want)
/* ME_EINVAL with err holding `sub`. */
#define ASSERT_FAILS(text, sub)                                                      \
    do {                                                                             \
        const char *s_ = shape(text);                                                \
        if (strncmp(s_, "ERR-1: filter: ", 15) != 0 || !strstr(s_, sub))            \
            me_test_fail(__FILE__, __LINE__, "%s: want an error with \"%s\", got \"%s\"", \
                         #text, sub, s_);                                            \
    } while (0)

/* ---- the expression form ---- */

TEST(filter_parse_operators_map_onto_matches_ranges_and_exists) {
    ASSERT_SHAPE("year = 2020", "{must:[year=[i:2020]]}");
    ASSERT_SHAPE("year == 2020", "{must:[year=[i:2020]]}");
    ASSERT_SHAPE("year != 2020", "{not:[year=[i:2020]]}");
    ASSERT_SHAPE("n < 5", "{must:[n(lt:5)]}");
    ASSERT_SHAPE("n <= 5", "{must:[n(lte:5)]}");
    ASSERT_SHAPE("n > -5", "{must:[n(gt:-5)]}");
    ASSERT_SHAPE("n >= 2.5", "{must:[n(gte:2.5)]}");
    ASSERT_SHAPE("n>=2.5e3", "{must:[n(gte:2500)]}");
    ASSERT_SHAPE("n<1E-2", "{must:[n(lt:0.01)]}");
    ASSERT_SHAPE("lang=en", "{must:[lang=[k:en]]}");
    ASSERT_SHAPE("flag = true", "{must:[flag=[b:1]]}");
    ASSERT_SHAPE("flag = false", "{must:[flag=[b:0]]}");
    ASSERT_SHAPE("meta.author exists", "{must:[meta.author?]}");
    ASSERT_SHAPE("a=1 AND b<=2 AND c EXISTS AND d!=x", "{must:[a=[i:1],b(lte:2),c?] not:[d=[k:x]]}");
    /* Blanks of every kind, and none at all. */
    ASSERT_SHAPE(" \t\r\n a\t=\n1 \f\v", "{must:[a=[i:1]]}");
    ASSERT_SHAPE("(a=1)AND(b!=2)", "{must:[a=[i:1]] not:[b=[i:2]]}");
}

TEST(filter_parse_and_binds_tighter_than_or) {
    ASSERT_SHAPE("a=1 OR b=2 AND c=3", "{should:[a=[i:1],{must:[b=[i:2],c=[i:3]]}]}");
    ASSERT_SHAPE("a=1 AND b=2 OR c=3", "{should:[{must:[a=[i:1],b=[i:2]]},c=[i:3]]}");
    ASSERT_SHAPE("(a=1 OR b=2) AND c=3", "{must:[{should:[a=[i:1],b=[i:2]]},c=[i:3]]}");
    ASSERT_SHAPE("a=1 OR b=2 OR c=3", "{should:[a=[i:1],b=[i:2],c=[i:3]]}");
    /* Same-operator groups flatten; redundant parentheses add nothing. */
    ASSERT_SHAPE("a=1 AND (b=2 AND c=3)", "{must:[a=[i:1],b=[i:2],c=[i:3]]}");
    ASSERT_SHAPE("(a=1 OR b=2) OR (c=3 OR d=4)", "{should:[a=[i:1],b=[i:2],c=[i:3],d=[i:4]]}");
    ASSERT_SHAPE("((((a=1))))", "{must:[a=[i:1]]}");
    ASSERT_SHAPE("(a=1 AND NOT b=2) AND c!=3", "{must:[a=[i:1]] not:[b=[i:2],c=[i:3]]}");
}

TEST(filter_parse_not_goes_to_must_not_or_a_nested_filter) {
    ASSERT_SHAPE("NOT a=1", "{not:[a=[i:1]]}");
    ASSERT_SHAPE("NOT a != 1", "{must:[a=[i:1]]}");
    ASSERT_SHAPE("NOT NOT a=1", "{must:[a=[i:1]]}");
    ASSERT_SHAPE("a=1 AND NOT b=2", "{must:[a=[i:1]] not:[b=[i:2]]}");
    ASSERT_SHAPE("a=1 OR NOT b=2", "{should:[a=[i:1],{not:[b=[i:2]]}]}");
    ASSERT_SHAPE("a=1 OR b!=2", "{should:[a=[i:1],{not:[b=[i:2]]}]}");
    ASSERT_SHAPE("NOT (a=1 AND b=2)", "{not:[{must:[a=[i:1],b=[i:2]]}]}");
    ASSERT_SHAPE("NOT (a=1 OR b=2)", "{not:[{should:[a=[i:1],b=[i:2]]}]}");
    ASSERT_SHAPE("c=3 OR NOT (a=1 OR b=2)", "{should:[c=[i:3],{not:[{should:[a=[i:1],b=[i:2]]}]}]}");
    ASSERT_SHAPE("NOT a EXISTS", "{not:[a?]}");
    /* NOT binds to one unary: NOT a AND b is (NOT a) AND b. */
    ASSERT_SHAPE("NOT a=1 AND b=2", "{must:[b=[i:2]] not:[a=[i:1]]}");
}

TEST(filter_parse_in_and_not_in_list_one_type) {
    ASSERT_SHAPE("tag IN (x, 'y z', \"w\")", "{must:[tag=[k:x,k:y z,k:w]]}");
    ASSERT_SHAPE("n IN (1,2,-3)", "{must:[n=[i:1,i:2,i:-3]]}");
    ASSERT_SHAPE("b in (TRUE, false)", "{must:[b=[b:1,b:0]]}");
    ASSERT_SHAPE("tag NOT IN (a)", "{not:[tag=[k:a]]}");
    ASSERT_SHAPE("x=1 OR tag not in (a, b)", "{should:[x=[i:1],{not:[tag=[k:a,k:b]]}]}");
    ASSERT_SHAPE("code IN (02020, 2020x)", "{must:[code=[k:02020,k:2020x]]}");
    ASSERT_FAILS("n IN (1, x)", "mixed value types: an integer and a keyword");
    ASSERT_FAILS("n IN ('1', 2)", "mixed value types");
    ASSERT_FAILS("n IN (true, 1)", "mixed value types");
    ASSERT_FAILS("n IN ()", "at byte 6: expected a value after '('");
    ASSERT_FAILS("n IN (1,)", "at byte 8: expected a value after ','");
    ASSERT_FAILS("n IN (1 2)", "at byte 8: expected ',' or ')' in the IN list");
    ASSERT_FAILS("n IN (1", "expected ',' or ')' in the IN list, found the end");
    ASSERT_FAILS("n IN 1", "expected '(' after IN");
    ASSERT_FAILS("n NOT 1", "expected IN after NOT");
    ASSERT_FAILS("n IN (1.5)", "use a range for non-integer numbers: n>=1.5 AND n<=1.5");
}

TEST(filter_parse_quotes_and_escapes) {
    ASSERT_SHAPE("a = 'it\\'s'", "{must:[a=[k:it's]]}");
    ASSERT_SHAPE("a = \"say \\\"hi\\\"\"", "{must:[a=[k:say \"hi\"]]}");
    ASSERT_SHAPE("a = 'back\\\\slash'", "{must:[a=[k:back\\slash]]}");
    ASSERT_SHAPE("a = \"it's\"", "{must:[a=[k:it's]]}");
    ASSERT_SHAPE("a = ''", "{must:[a=[k:]]}");
    ASSERT_SHAPE("a = 'AND OR ( ) , = x'", "{must:[a=[k:AND OR ( ) , = x]]}");
    ASSERT_SHAPE("a = 'caf\xc3\xa9 \xe2\x82\xac'", "{must:[a=[k:caf\xc3\xa9 \xe2\x82\xac]]}");
    /* Quoted numbers and reserved words are keywords. */
    ASSERT_SHAPE("a = '2020'", "{must:[a=[k:2020]]}");
    ASSERT_SHAPE("a = 'true'", "{must:[a=[k:true]]}");
    ASSERT_SHAPE("a = \"9.5\"", "{must:[a=[k:9.5]]}");
    ASSERT_FAILS("a = 'x\\n'", "at byte 6: unknown escape '\\x5cn'");
    ASSERT_FAILS("a = 'open", "at byte 4: a quoted value without its closing '");
    ASSERT_FAILS("a = \"open\\\"", "at byte 4: a quoted value without its closing \"");
    ASSERT_FAILS("a = 'x\\", "without its closing");
    ASSERT_FAILS("a = 'caf\xe9'", "at byte 4: a quoted value that is not valid UTF-8");
    ASSERT_STREQ(shape_n("a = 'x\0y'", 9), "ERR-1: filter: at byte 6: a NUL byte in a quoted value");
    ASSERT_STREQ(shape_n("a = 1\0", 6), "ERR-1: filter: at byte 5: unexpected character '\\x00'");
}

TEST(filter_parse_keywords_are_case_insensitive) {
    ASSERT_SHAPE("a=1 and b=2 Or NoT c exists", "{should:[{must:[a=[i:1],b=[i:2]]},{not:[c?]}]}");
    ASSERT_SHAPE("a=1 and b=2", "{must:[a=[i:1],b=[i:2]]}");
    ASSERT_SHAPE("a=1 or b=2", "{should:[a=[i:1],b=[i:2]]}");
    ASSERT_SHAPE("not a=1", "{not:[a=[i:1]]}");
    ASSERT_SHAPE("a Exists", "{must:[a?]}");
    ASSERT_SHAPE("a iN (x)", "{must:[a=[k:x]]}");
    ASSERT_SHAPE("a nOt In (x)", "{not:[a=[k:x]]}");
    ASSERT_SHAPE("a = True OR b = FALSE", "{should:[a=[b:1],b=[b:0]]}");
    /* Field names are not keywords, and keep their case. */
    ASSERT_SHAPE("Lang = EN", "{must:[Lang=[k:EN]]}");
    ASSERT_SHAPE("android = 1 AND oregon = 2", "{must:[android=[i:1],oregon=[i:2]]}");
}

TEST(filter_parse_integers_barewords_and_numbers) {
    ASSERT_SHAPE("year=2020", "{must:[year=[i:2020]]}");
    ASSERT_SHAPE("code=02020", "{must:[code=[k:02020]]}");
    ASSERT_SHAPE("v=0", "{must:[v=[i:0]]}");
    ASSERT_SHAPE("v=-0", "{must:[v=[i:0]]}");
    ASSERT_SHAPE("v=-12", "{must:[v=[i:-12]]}");
    ASSERT_SHAPE("v=9223372036854775807", "{must:[v=[i:9223372036854775807]]}");
    ASSERT_SHAPE("v=-9223372036854775808", "{must:[v=[i:-9223372036854775808]]}");
    ASSERT_SHAPE("v=+1", "{must:[v=[k:+1]]}");
    ASSERT_SHAPE("v=1.2.3", "{must:[v=[k:1.2.3]]}");
    ASSERT_SHAPE("v=1.", "{must:[v=[k:1.]]}");
    ASSERT_SHAPE("v=2020-01-01", "{must:[v=[k:2020-01-01]]}");
    ASSERT_SHAPE("url=https://x.org/a@b:c", "{must:[url=[k:https://x.org/a@b:c]]}");
    ASSERT_SHAPE("v=-", "{must:[v=[k:-]]}");
    ASSERT_FAILS("v=9.5", "use a range for non-integer numbers: v>=9.5 AND v<=9.5");
    ASSERT_FAILS("v=1e3", "use a range for non-integer numbers");
    ASSERT_FAILS("v=9223372036854775808", "'9223372036854775808' is not a 64-bit integer");
    ASSERT_FAILS("v=-9223372036854775809", "is not a 64-bit integer");
    /* In a range, integers and numbers alike; a big integer is a number. */
    ASSERT_SHAPE("v<9223372036854775808", "{must:[v(lt:9.2233720368547758e+18)]}");
    ASSERT_SHAPE("v>=0.5 AND v<=1e2", "{must:[v(gte:0.5),v(lte:100)]}");
    ASSERT_FAILS("v > abc", "at byte 4: expected a number after '>'");
    ASSERT_FAILS("v > 'abc'", "expected a number after '>'");
    ASSERT_FAILS("v > 01", "expected a number after '>'");
    ASSERT_FAILS("v > true", "expected a number after '>'");
}

TEST(filter_parse_reports_errors_with_their_byte_offset) {
    ASSERT_FAILS("a = 1 AND b >=", "filter: at byte 14: expected a value after '>=', found the end");
    ASSERT_FAILS("a = 1 AND b >= )", "at byte 15: expected a value after '>=', found ')'");
    ASSERT_FAILS("a =", "at byte 3: expected a value after '='");
    ASSERT_FAILS("a = AND", "at byte 4: expected a value after '=', found 'AND' (quote a keyword value");
    ASSERT_FAILS("(a = 1", "at byte 6: expected ')' to close the '(' at byte 0, found the end");
    ASSERT_FAILS("((a = 1) AND b = 2", "expected ')' to close the '(' at byte 0");
    ASSERT_FAILS("a = 1)", "at byte 5: a ')' without its '('");
    ASSERT_FAILS("()", "at byte 1: expected a condition");
    ASSERT_FAILS(")", "at byte 0: expected a condition");
    ASSERT_FAILS("a = 1 b = 2", "at byte 6: expected AND, OR or the end, found 'b'");
    ASSERT_FAILS("a = 1 AND", "at byte 9: expected a condition (FIELD op value, FIELD IN (...), FIELD EXISTS), NOT or '(', found the end");
    ASSERT_FAILS("a = 1 OR OR b = 1", "at byte 9: expected a condition");
    ASSERT_FAILS("a ~ 1", "at byte 2: unexpected character '~'");
    ASSERT_FAILS("a 1", "at byte 2: expected an operator (= == != < <= > >=), IN, NOT IN or EXISTS after the field 'a', found '1'");
    ASSERT_FAILS("a ! 1", "at byte 2: '!' alone is not an operator");
    ASSERT_FAILS("a => 1", "at byte 3: expected a value after '=', found '>'");
    ASSERT_FAILS("a === 1", "expected a value after '=='");
    ASSERT_FAILS("a <> 1", "expected a value after '<'");
    ASSERT_FAILS("'a' = 1", "at byte 0: expected a condition");
    ASSERT_FAILS("AND = 1", "at byte 0: expected a condition");
    ASSERT_FAILS("a = 1 AND \xc3\xa9 = 2", "at byte 10: unexpected character '\\xc3'");
    ASSERT_FAILS("", "filter: empty filter");
    ASSERT_FAILS(" \t\n ", "filter: empty filter");
    /* Field names. */
    ASSERT_FAILS("a..b = 1", "at byte 0: a field name must be");
    ASSERT_FAILS(".a = 1", "a field name must be");
    ASSERT_FAILS("a. = 1", "a field name must be");
    ASSERT_FAILS("x = 1 AND a:b = 1", "at byte 10: a field name must be");
    ASSERT_FAILS("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa = 1", "got 65 bytes");
    ASSERT_SHAPE("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa = 1",
                 "{must:[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=[i:1]]}");
    ASSERT_SHAPE("a-b_c.D9 = 1", "{must:[a-b_c.D9=[i:1]]}");
    /* Range bounds must be finite; inf and nan are just words. */
    ASSERT_FAILS("v < 1e999", "at byte 4: a range bound must be finite");
    ASSERT_FAILS("v > -1e999", "a range bound must be finite");
    ASSERT_FAILS("v < inf", "expected a number after '<'");
    ASSERT_FAILS("v < nan", "expected a number after '<'");
    ASSERT_SHAPE("v < 1e-999", "{must:[v(lt:0)]}");
}

/* ---- the limits ---- */

static char *repeat_join(const char *item, const char *sep, int n, const char *pre, const char *post) {
    size_t cap = strlen(pre) + strlen(post) + (size_t)n * (strlen(item) + strlen(sep) + 16) + 1;
    char *s = malloc(cap), *o = s;
    o += sprintf(o, "%s", pre);
    for (int i = 0; i < n; i++) o += sprintf(o, "%s%s", i ? sep : "", item);
    sprintf(o, "%s", post);
    return s;
}

/* Filters nested `levels` deep, alternating OR and AND so nothing flattens:
 * a=1 OR (a=1 AND (a=1 OR (...))). */
static char *nested_expr(int levels) {
    char *s = malloc((size_t)levels * 32 + 16), *o = s;
    for (int i = 0; i < levels; i++) o += sprintf(o, "a=%d %s %s", i, i % 2 ? "AND" : "OR", i + 1 < levels ? "(" : "");
    o += sprintf(o, "a=99");
    for (int i = 1; i < levels; i++) *o++ = ')';
    *o = 0;
    return s;
}

static int filter_depth(const Metaembed__Filter *f) {
    int d = 0;
    Metaembed__Condition **lists[3] = { f->must, f->should, f->must_not };
    size_t ns[3] = { f->n_must, f->n_should, f->n_must_not };
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < ns[l]; i++)
            if (lists[l][i]->condition_case == METAEMBED__CONDITION__CONDITION_FILTER) {
                int k = filter_depth(lists[l][i]->filter);
                if (k > d) d = k;
            }
    return d + 1;
}

TEST(filter_parse_depth_limit_in_both_forms) {
    char err[512];
    Metaembed__Filter *f = NULL;
    char *six = nested_expr(6), *seven = nested_expr(7);
    ASSERT_OK(me_filter_parse(six, strlen(six), &f, err, sizeof err));
    ASSERT_EQ(filter_depth(f), 6);
    me_filter_free(f);
    ASSERT_EQ(me_filter_parse(seven, strlen(seven), &f, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(f == NULL);
    ASSERT_TRUE(strstr(err, "filter: at byte") && strstr(err, "nested deeper than 6 levels"));
    free(six);
    free(seven);
    /* NOT of a group nests too: NOT (a AND b) inside an OR chain is 3 deep. */
    ASSERT_SHAPE("c=1 OR NOT (a=1 AND b=1)", "{should:[c=[i:1],{not:[{must:[a=[i:1],b=[i:1]]}]}]}");
    /* Redundant parentheses are fine up to a bound, then refused early. */
    char *p24 = repeat_join("(", "", 24, "", "a=1"), *p25 = repeat_join("(", "", 25, "", "a=1");
    char *c24 = repeat_join(")", "", 24, p24, ""), *c25 = repeat_join(")", "", 25, p25, "");
    ASSERT_SHAPE(c24, "{must:[a=[i:1]]}");
    ASSERT_FAILS(c25, "at byte 24: parentheses and NOTs nested deeper than 24 levels");
    free(p24); free(p25); free(c24); free(c25);

    /* JSON: {"must": [{"should": [{"must": [...]}]}]} */
    for (int levels = 6; levels <= 7; levels++) {
        char *j = malloc(4096), *o = j;
        for (int i = 0; i < levels - 1; i++) o += sprintf(o, "{\"%s\": [", i % 2 ? "should" : "must");
        o += sprintf(o, "{\"must\": [{\"exists\": \"a\"}]}");
        for (int i = 0; i < levels - 1; i++) o += sprintf(o, "]}");
        int rc = me_filter_parse(j, strlen(j), &f, err, sizeof err);
        if (levels == 6) {
            ASSERT_OK(rc);
            ASSERT_EQ(filter_depth(f), 6);
            me_filter_free(f);
        } else {
            ASSERT_EQ(rc, ME_EINVAL);
            ASSERT_TRUE(strstr(err, "filter: nested deeper than 6 levels (at must[0].should[0].must[0]") != NULL);
        }
        free(j);
    }
}

TEST(filter_parse_condition_value_and_size_limits) {
    char err[512];
    Metaembed__Filter *f = NULL;
    /* 256 conditions at most, nested ones counted. */
    char *c256 = repeat_join("a=1", " AND ", 256, "", ""), *c257 = repeat_join("a=1", " AND ", 257, "", "");
    ASSERT_OK(me_filter_parse(c256, strlen(c256), &f, err, sizeof err));
    ASSERT_EQ(f->n_must, 256);
    me_filter_free(f);
    ASSERT_FAILS(c257, "more than 256 conditions");
    free(c256);
    free(c257);
    /* 255 plain + one nested filter of one more: 256 + 1 wrappers. */
    char *n = repeat_join("a=1", " AND ", 254, "", " AND (b=1 OR c=1)");
    ASSERT_FAILS(n, "more than 256 conditions");
    free(n);
    n = repeat_join("a=1", " AND ", 253, "", " AND (b=1 OR c=1)");
    ASSERT_OK(me_filter_parse(n, strlen(n), &f, err, sizeof err));
    me_filter_free(f);
    free(n);
    char *j = repeat_join("{\"exists\":\"a\"}", ",", 257, "{\"must\":[", "]}");
    ASSERT_FAILS(j, "filter: more than 256 conditions (at must[256])");
    free(j);

    /* 4096 match values over the whole filter. */
    char *v4096 = repeat_join("7", ",", 4096, "n IN (", ")"), *v4097 = repeat_join("7", ",", 4097, "n IN (", ")");
    ASSERT_OK(me_filter_parse(v4096, strlen(v4096), &f, err, sizeof err));
    ASSERT_EQ(f->must[0]->match->n_integers, 4096);
    me_filter_free(f);
    ASSERT_FAILS(v4097, "more than 4096 values");
    free(v4096);
    free(v4097);
    char *split = repeat_join("7", ",", 2048, "n IN (", ") AND m IN (x,");
    char *split2 = repeat_join("k", ",", 2048, split, ")");
    ASSERT_FAILS(split2, "more than 4096 values");
    free(split);
    free(split2);
    j = repeat_join("1", ",", 4097, "{\"field\":\"n\",\"any\":[", "]}");
    ASSERT_FAILS(j, "filter: more than 4096 values (at any[4096])");
    free(j);

    /* Keywords up to 256 bytes, bare, quoted (after unescaping) or JSON. */
    char k256[300], k257[300], text[400];
    memset(k256, 'k', 256);
    k256[256] = 0;
    memset(k257, 'k', 257);
    k257[257] = 0;
    snprintf(text, sizeof text, "a = %s", k256);
    ASSERT_OK(me_filter_parse(text, strlen(text), &f, err, sizeof err));
    ASSERT_EQ(strlen(f->must[0]->match->keywords[0]), 256);
    me_filter_free(f);
    snprintf(text, sizeof text, "a = %s", k257);
    ASSERT_FAILS(text, "at byte 4: a keyword longer than 256 bytes (257)");
    snprintf(text, sizeof text, "a = '%s'", k257);
    ASSERT_FAILS(text, "a keyword longer than 256 bytes");
    snprintf(text, sizeof text, "a = '\\'%s'", k256 + 1);  /* 256 once unescaped */
    ASSERT_OK(me_filter_parse(text, strlen(text), &f, err, sizeof err));
    me_filter_free(f);
    snprintf(text, sizeof text, "{\"field\":\"a\",\"any\":[\"x\",\"%s\"]}", k257);
    ASSERT_FAILS(text, "filter: a keyword longer than 256 bytes (257) (at any[1])");

    /* The text: ME_FILTER_TEXT_MAX bytes at most. */
    size_t max = ME_FILTER_TEXT_MAX;
    char *big = malloc(max + 2);
    memset(big, ' ', max + 1);
    memcpy(big, "a=1", 3);
    big[max + 1] = 0;
    ASSERT_OK(me_filter_parse(big, max, &f, err, sizeof err));
    me_filter_free(f);
    ASSERT_EQ(me_filter_parse(big, max + 1, &f, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(strstr(err, "filter: longer than 65536 bytes (65537)") != NULL);
    free(big);
}

/* ---- the JSON form ---- */

static size_t packed(const Metaembed__Filter *f, uint8_t **out) {
    size_t n = metaembed__filter__get_packed_size(f);
    *out = malloc(n ? n : 1);
    return metaembed__filter__pack(f, *out);
}

/* Both texts parse, to trees with the same packed bytes. */
static int same_tree(const char *a, const char *b, char *why, size_t cap) {
    Metaembed__Filter *fa = NULL, *fb = NULL;
    char err[512];
    int rc = me_filter_parse(a, strlen(a), &fa, err, sizeof err);
    if (rc) { snprintf(why, cap, "%s: %s", a, err); return 0; }
    rc = me_filter_parse(b, strlen(b), &fb, err, sizeof err);
    if (rc) { snprintf(why, cap, "%s: %s", b, err); me_filter_free(fa); return 0; }
    uint8_t *pa, *pb;
    size_t na = packed(fa, &pa), nb = packed(fb, &pb);
    int same = na == nb && memcmp(pa, pb, na) == 0;
    if (!same) {
        dump_t *da = calloc(1, sizeof *da), *db = calloc(1, sizeof *db);
        dump_filter(da, fa);
        dump_filter(db, fb);
        snprintf(why, cap, "%.480s != %.480s", da->s, db->s);
        free(da);
        free(db);
    }
    free(pa);
    free(pb);
    me_filter_free(fa);
    me_filter_free(fb);
    return same;
}

#define ASSERT_SAME(a, b)                                                                   \
    do {                                                                                    \
        char why_[1024] = "";                                                               \
        if (!same_tree(a, b, why_, sizeof why_)) me_test_fail(__FILE__, __LINE__, "%s", why_); \
    } while (0)

TEST(filter_parse_json_forms_equal_their_expressions) {
    ASSERT_SAME("flag = true", "{\"field\": \"flag\", \"match\": true}");
    ASSERT_SAME("year = 2020", "{\"field\": \"year\", \"match\": 2020}");
    ASSERT_SAME("year = 2000", "{\"field\": \"year\", \"match\": 2e3}");
    ASSERT_SAME("lang = en", "{\"must\": {\"field\": \"lang\", \"match\": \"en\"}}");
    ASSERT_SAME("a EXISTS", "{\"exists\": \"a\"}");
    ASSERT_SAME("a = 1 AND b != 'x' AND c EXISTS",
                "{\"must\": [{\"field\": \"a\", \"match\": 1}, {\"exists\": \"c\"}],"
                " \"must_not\": [{\"field\": \"b\", \"match\": \"x\"}]}");
    ASSERT_SAME("tag IN (x, y) OR n >= 2.5",
                "{\"should\": [{\"field\": \"tag\", \"any\": [\"x\", \"y\"]},"
                " {\"field\": \"n\", \"range\": {\"gte\": 2.5}}]}");
    ASSERT_SAME("n > 1 AND n <= 5",
                "{\"must\": [{\"field\": \"n\", \"range\": {\"gt\": 1}}, {\"field\": \"n\", \"range\": {\"lte\": 5}}]}");
    ASSERT_SAME("a = 1 OR (b = 2 AND NOT c = 3)",
                "{\"should\": [{\"field\": \"a\", \"match\": 1},"
                " {\"must\": [{\"field\": \"b\", \"match\": 2}], \"must_not\": [{\"field\": \"c\", \"match\": 3}]}]}");
    ASSERT_SAME("a = 1 OR NOT b IN (true, false)",
                "{\"should\": [{\"field\": \"a\", \"match\": 1},"
                " {\"must_not\": [{\"field\": \"b\", \"any\": [true, false]}]}]}");
    ASSERT_SAME("k = 'caf\xc3\xa9'", "{\"field\": \"k\", \"match\": \"caf\\u00e9\"}");
    ASSERT_SAME("n = -9223372036854775808", "{\"field\": \"n\", \"match\": -9223372036854775808}");
    /* A range with several bounds has no single-comparison expression. */
    ASSERT_SHAPE("{\"field\": \"n\", \"range\": {\"gt\": 1, \"gte\": 2, \"lt\": 3, \"lte\": 4}}",
                 "{must:[n(gt:1,gte:2,lt:3,lte:4)]}");
    ASSERT_SHAPE("{}", "{}");
    ASSERT_SHAPE(" {\"must\": [], \"should\": []}", "{}");

    /* me_filter_from_json on a parsed body member. */
    const char *body = "{\"k\": 3, \"filter\": {\"should\": [{\"exists\": \"x\"}, {\"exists\": \"y\"}]}}";
    me_json_doc_t *doc = NULL;
    ASSERT_OK(me_json_parse(body, strlen(body), &doc, NULL));
    Metaembed__Filter *f = (Metaembed__Filter *)1;
    char err[256];
    ASSERT_OK(me_filter_from_json(me_json_get(me_json_root(doc), "filter"), &f, err, sizeof err));
    dump_t *d = calloc(1, sizeof *d);
    dump_filter(d, f);
    ASSERT_STREQ(d->s, "{should:[x?,y?]}");
    free(d);
    me_filter_free(f);
    ASSERT_EQ(me_filter_from_json(me_json_get(me_json_root(doc), "k"), &f, err, sizeof err), ME_EINVAL);
    ASSERT_TRUE(f == NULL);
    ASSERT_TRUE(strstr(err, "filter: expected an object (a filter or a condition); got a number") != NULL);
    ASSERT_EQ(me_filter_from_json(me_json_get(me_json_root(doc), "absent"), &f, err, sizeof err), ME_EINVAL);
    me_json_free(doc);
}

TEST(filter_parse_json_errors_name_the_member_and_the_place) {
    ASSERT_FAILS("{\"feild\": \"x\", \"match\": 1}", "filter: unknown member 'feild' in a condition");
    ASSERT_FAILS("{\"must\": [{\"field\": \"x\", \"match\": 1, \"boost\": 2}]}",
                 "unknown member 'boost' in a condition (at must[0])");
    ASSERT_FAILS("{\"must\": [], \"shuold\": []}", "unknown member 'shuold' in a filter");
    ASSERT_FAILS("{\"must\": [], \"field\": \"a\"}", "unknown member 'field' in a filter");
    ASSERT_FAILS("{\"field\": \"n\", \"range\": {\"gtt\": 1}}", "unknown member 'gtt' in a range (a range takes gt, gte, lt, lte) (at range)");
    ASSERT_FAILS("{\"f\\u0000\": 1}", "unknown member 'f\\x00' in a condition");
    ASSERT_FAILS("{\"must\": [], \"must\": []}", "'must' given twice in a filter");
    ASSERT_FAILS("{\"exists\": \"a\", \"exists\": \"b\"}", "'exists' given twice in a condition");
    ASSERT_FAILS("{\"field\": \"n\", \"range\": {\"gt\": 1, \"gt\": 2}}", "'gt' given twice in a range");
    /* Types. */
    ASSERT_FAILS("[1]", "at byte 0: unexpected character '['");  /* not '{': an expression */
    ASSERT_FAILS("{\"must\": 5}", "'must' must be an array of conditions (or one condition object); got a number (at must)");
    ASSERT_FAILS("{\"should\": [\"a = 1\"]}", "a condition must be an object; got a string (at should[0])");
    ASSERT_FAILS("{\"field\": 1, \"match\": 1}", "'field' must be a string (a field name); got a number (at field)");
    ASSERT_FAILS("{\"field\": \"a..b\", \"match\": 1}", "'field': a field name must be");
    ASSERT_FAILS("{\"exists\": \"\"}", "'exists': a field name must be");
    ASSERT_FAILS("{\"exists\": true}", "'exists' must be a string");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": null}", "'match' takes a string, an integer, true or false; got null");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": [1, 2]}", "got an array (use 'any' for a list)");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": 2.5}",
                 "use a range for non-integer numbers: {\"field\": \"a\", \"range\": {\"gte\": 2.5, \"lte\": 2.5}} (at match)");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": 1e300}", "'1e300' is not a 64-bit integer");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": 9223372036854775808}", "is not a 64-bit integer");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": \"x\\u0000y\"}", "a keyword holds a NUL byte (\\u0000) (at match)");
    ASSERT_FAILS("{\"field\": \"a\", \"any\": []}", "'any' needs at least one value (at any)");
    ASSERT_FAILS("{\"field\": \"a\", \"any\": 1}", "'any' must be an array of values; got a number");
    ASSERT_FAILS("{\"field\": \"a\", \"any\": [1, \"x\"]}", "mixed value types: an integer and a keyword (a match lists values of one type) (at any[1])");
    ASSERT_FAILS("{\"field\": \"a\", \"any\": [true, {}]}", "'any' takes a string, an integer, true or false; got an object (at any[1])");
    ASSERT_FAILS("{\"field\": \"a\", \"range\": 1}", "'range' must be an object of bounds");
    ASSERT_FAILS("{\"field\": \"a\", \"range\": {}}", "a range needs at least one of gt, gte, lt, lte");
    ASSERT_FAILS("{\"field\": \"a\", \"range\": {\"lt\": \"5\"}}", "range bound 'lt' must be a number; got a string");
    ASSERT_FAILS("{\"field\": \"a\", \"range\": {\"lt\": 1e999}}", "range bound 'lt' must be finite (at range)");
    ASSERT_FAILS("{\"field\": \"a\", \"range\": {\"gte\": -1e999}}", "range bound 'gte' must be finite");
    ASSERT_FAILS("{\"field\": \"a\", \"range\": {\"lt\": NaN}}", "not valid JSON");
    /* Shapes. */
    ASSERT_FAILS("{\"field\": \"a\"}", "a condition with 'field' needs 'match', 'any' or 'range'");
    ASSERT_FAILS("{\"match\": 1}", "'match' needs a 'field'");
    ASSERT_FAILS("{\"field\": \"a\", \"match\": 1, \"any\": [1]}", "one of 'match', 'any' and 'range', not several");
    ASSERT_FAILS("{\"exists\": \"a\", \"field\": \"a\"}", "'exists' stands alone in its condition; got 'field' too");
    ASSERT_FAILS("{\"should\": [{\"must\": [], \"field\": \"a\"}]}", "either a nested filter (must, should, must_not) or one condition; got 'field'");
    ASSERT_FAILS("{\"must\": [{}]}", "'must', 'should', 'must_not') (at must[0])");
    /* Not JSON at all. */
    ASSERT_FAILS("{\"must\": [}", "filter: not valid JSON: ");
    ASSERT_FAILS("{\"must\": []} x", "not valid JSON");
    ASSERT_FAILS("{\"must\": [{\"exists\": \"a\"},]}", "not valid JSON");
}

/* ---- hostile input ---- */

/* What any tree built here must be: within every limit, each Match with
 * one non-empty list, each Range with one to four single finite bounds,
 * strings NUL-free UTF-8, names valid. Returns its conditions. */
static size_t check_tree(const Metaembed__Filter *f, int depth, size_t *values) {
    ASSERT_TRUE(depth <= ME_FILTER_DEPTH_MAX);
    size_t conds = 0;
    Metaembed__Condition **lists[3] = { f->must, f->should, f->must_not };
    size_t ns[3] = { f->n_must, f->n_should, f->n_must_not };
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < ns[l]; i++) {
            const Metaembed__Condition *c = lists[l][i];
            conds++;
            switch (c->condition_case) {
            case METAEMBED__CONDITION__CONDITION_MATCH: {
                const Metaembed__Match *m = c->match;
                ASSERT_OK(me_check_field_name(m->field, strlen(m->field), NULL, 0));
                ASSERT_EQ(!!m->n_keywords + !!m->n_integers + !!m->n_booleans, 1);
                for (size_t k = 0; k < m->n_keywords; k++) {
                    ASSERT_TRUE(strlen(m->keywords[k]) <= ME_KEYWORD_MAX);
                    ASSERT_TRUE(me_utf8_valid((const uint8_t *)m->keywords[k], strlen(m->keywords[k])));
                }
                *values += m->n_keywords + m->n_integers + m->n_booleans;
                break;
            }
            case METAEMBED__CONDITION__CONDITION_RANGE: {
                const Metaembed__Range *r = c->range;
                ASSERT_OK(me_check_field_name(r->field, strlen(r->field), NULL, 0));
                ASSERT_TRUE(r->n_gt <= 1 && r->n_gte <= 1 && r->n_lt <= 1 && r->n_lte <= 1);
                ASSERT_TRUE(r->n_gt + r->n_gte + r->n_lt + r->n_lte >= 1);
                if (r->n_gt) ASSERT_TRUE(isfinite(r->gt[0]));
                if (r->n_gte) ASSERT_TRUE(isfinite(r->gte[0]));
                if (r->n_lt) ASSERT_TRUE(isfinite(r->lt[0]));
                if (r->n_lte) ASSERT_TRUE(isfinite(r->lte[0]));
                break;
            }
            case METAEMBED__CONDITION__CONDITION_EXISTS:
                ASSERT_OK(me_check_field_name(c->exists, strlen(c->exists), NULL, 0));
                break;
            case METAEMBED__CONDITION__CONDITION_FILTER:
                conds += check_tree(c->filter, depth + 1, values);
                break;
            default:
                ASSERT_TRUE(!"a condition without a case");
            }
        }
    return conds;
}

/* Parses s; either a tree within the limits that packs and round-trips, or
 * ME_EINVAL with a message. Returns the rc. */
static int try_parse(const char *s, size_t n) {
    Metaembed__Filter *f = (Metaembed__Filter *)1;
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = me_filter_parse(s, n, &f, err, sizeof err);
    if (rc) {
        ASSERT_EQ(rc, ME_EINVAL);
        ASSERT_TRUE(f == NULL);
        ASSERT_TRUE(memchr(err, 0, sizeof err) != NULL);
        ASSERT_TRUE(strncmp(err, "filter: ", 8) == 0);
        ASSERT_TRUE(me_utf8_valid((const uint8_t *)err, strlen(err)));
        return rc;
    }
    size_t values = 0;
    ASSERT_TRUE(check_tree(f, 1, &values) <= ME_FILTER_CONDITIONS_MAX);
    ASSERT_TRUE(values <= ME_FILTER_VALUES_MAX);
    uint8_t *p;
    size_t len = packed(f, &p);
    ASSERT_OK(me_check_strings(&metaembed__filter__descriptor, p, len, err, sizeof err));
    Metaembed__Filter *u = metaembed__filter__unpack(NULL, len, p);
    ASSERT_TRUE(u != NULL);
    uint8_t *q;
    size_t len2 = packed(u, &q);
    ASSERT_TRUE(len2 == len && memcmp(p, q, len) == 0);
    metaembed__filter__free_unpacked(u, NULL);
    free(p);
    free(q);
    me_filter_free(f);
    return 0;
}

TEST(filter_parse_hostile_input_gives_errors_not_crashes) {
    static const char *const seeds[] = {
        "a = 1 AND (b != 'x' OR c IN (1, 2, 3)) AND NOT d EXISTS",
        "tag NOT IN (\"a\\\"b\", 'c\\'d', e) OR n >= -2.5e3 OR n < 7",
        "((a=1 OR b=2) AND (c=3 OR NOT (d=4 AND e=5))) OR f=true",
        "{\"must\": [{\"field\": \"a\", \"any\": [1, 2]}, {\"should\": [{\"exists\": \"b\"},"
        " {\"field\": \"c\", \"range\": {\"gt\": 1.5, \"lte\": 9}}]}], \"must_not\": {\"field\": \"d\", \"match\": \"x\"}}",
    };
    static const char *const pieces[] = {
        "a", "b.c", "=", "==", "!=", "<", "<=", ">", ">=", "!", "(", ")", ",", " ", "AND", "or", "NOT",
        "in", "exists", "TRUE", "false", "'", "\"", "\\", "1", "-1", "9.5", "1e999", "02", "x'y", "{",
        "}", "[", "]", ":", "\"must\"", "\"field\"", "\"any\"", "\"range\"", "\"gt\"", "\xc3\xa9", "\xff",
    };
    me_rng_t rng = { 20261203 };
    char buf[512];
    int ok = 0;
    for (int it = 0; it < 6000; it++) {
        size_t n = 0;
        int mode = (int)(me_rng_next(&rng) % 3);
        if (mode == 0) {
            /* random bytes */
            n = (size_t)(me_rng_next(&rng) % 64);
            for (size_t i = 0; i < n; i++) buf[i] = (char)(me_rng_next(&rng) & 0xff);
        } else if (mode == 1) {
            /* random pieces of the grammar */
            int k = (int)(me_rng_next(&rng) % 24) + 1;
            for (int i = 0; i < k; i++) {
                const char *p = pieces[me_rng_next(&rng) % (sizeof pieces / sizeof *pieces)];
                size_t pl = strlen(p);
                if (n + pl + 1 >= sizeof buf) break;
                memcpy(buf + n, p, pl);
                n += pl;
                if (me_rng_next(&rng) % 2) buf[n++] = ' ';
            }
        } else {
            /* a valid filter, mutated */
            const char *s = seeds[me_rng_next(&rng) % (sizeof seeds / sizeof *seeds)];
            n = strlen(s);
            memcpy(buf, s, n);
            int k = (int)(me_rng_next(&rng) % 4) + 1;
            for (int i = 0; i < k && n > 0; i++) {
                size_t at = (size_t)(me_rng_next(&rng) % n);
                switch (me_rng_next(&rng) % 4) {
                case 0: buf[at] = (char)(me_rng_next(&rng) & 0xff); break;
                case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
                case 2:
                    if (n + 1 < sizeof buf) {
                        memmove(buf + at + 1, buf + at, n - at);
                        buf[at] = "()'\",\\ =!{}[]"[me_rng_next(&rng) % 13];
                        n++;
                    }
                    break;
                default: n = at; break;
                }
            }
        }
        if (try_parse(buf, n) == 0) ok++;
    }
    ASSERT_TRUE(ok > 0);  /* some mutations stay valid: the checks above ran on trees too */

    /* Deep nesting, at and past the text limit. */
    size_t big = 100000;
    char *s = malloc(big + 16);
    memset(s, '(', big);
    ASSERT_EQ(try_parse(s, big), ME_EINVAL);
    ASSERT_EQ(try_parse(s, ME_FILTER_TEXT_MAX), ME_EINVAL);
    ASSERT_TRUE(strstr(shape_n(s, ME_FILTER_TEXT_MAX), "parentheses and NOTs nested deeper than") != NULL);
    memset(s, '[', big);
    s[0] = '{';
    ASSERT_TRUE(strstr(shape_n(s, ME_FILTER_TEXT_MAX), "not valid JSON") != NULL);
    for (size_t i = 0; i + 4 <= ME_FILTER_TEXT_MAX; i += 4) memcpy(s + i, "NOT ", 4);
    ASSERT_TRUE(strstr(shape_n(s, ME_FILTER_TEXT_MAX), "parentheses and NOTs nested deeper than") != NULL);
    for (size_t i = 0; i + 8 <= ME_FILTER_TEXT_MAX; i += 8) memcpy(s + i, "{\"must\":", 8);
    ASSERT_TRUE(strncmp(shape_n(s, ME_FILTER_TEXT_MAX), "ERR-1: filter: ", 15) == 0);
    /* A long run of conditions stops at the limit. */
    size_t n = 0;
    for (; n + 10 <= ME_FILTER_TEXT_MAX; n += 7) memcpy(s + n, "a=1 OR ", 7);
    memcpy(s + n, "a=1", 3);
    ASSERT_TRUE(strstr(shape_n(s, n + 3), "more than 256 conditions") != NULL);
    free(s);
}
