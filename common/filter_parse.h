/* Filters written by people and scripts, turned into the wire's Filter tree
 * (proto/metaembed.proto: must / should / must_not of Match, Range, exists
 * and nested Filter conditions).
 *
 * Two forms. An expression, with case-insensitive keywords:
 *
 *   expr  := and ( OR and )*
 *   and   := unary ( AND unary )*
 *   unary := NOT unary | '(' expr ')' | cond
 *   cond  := FIELD op value | FIELD [NOT] IN '(' value (',' value)* ')' | FIELD EXISTS
 *   op    := '=' | '==' | '!=' | '<' | '<=' | '>' | '>='
 *   value := integer | number | TRUE | FALSE | 'quoted' | "quoted" | bareword
 *
 * e.g.  lang = en AND year >= 2020 AND NOT tag IN ('draft', "old")
 *
 * An integer is -?[0-9]+ without leading zeros that fits int64; a number
 * has a fraction or an exponent and only bounds a range; quotes take the
 * escapes \\ \' \"; any other run of [A-Za-z0-9_.:/@+-] is a keyword
 * ("code=02020" is the keyword "02020"). Or a JSON object (the first
 * non-blank byte is '{'): a filter {"must": [...], "should": [...],
 * "must_not": [...]} or a single condition, each condition one of
 * {"field": F, "match": V}, {"field": F, "any": [V, ...]},
 * {"field": F, "range": {"gt"|"gte"|"lt"|"lte": number, ...}},
 * {"exists": F} or a nested filter.
 *
 * An expression maps onto the tree thus: an AND chain is one filter's
 * must (a NOT or != operand: its must_not), an OR chain one filter's
 * should (a negated operand: a nested {must_not: [c]}), a group of the
 * other operator a nested filter, one of the same operator flattened.
 *
 * Every limit of common/validate.h holds for what comes back: depth,
 * conditions (those of the tree built, a nested filter's one included),
 * values, keyword and field name sizes. Any input, however hostile, gives
 * a tree or an error, never a crash. */
#ifndef ME_FILTER_PARSE_H
#define ME_FILTER_PARSE_H

#include <stddef.h>

#include "common/json.h"
#include "common/wire.h"

/* A filter written by a person or a script: a JSON object (the first
 * non-blank byte is '{') or an expression. *out: a malloc'd tree
 * (me_filter_free). 0, or ME_EINVAL with err saying what and where (the
 * byte offset, for expressions), ME_ENOMEM; *out is then NULL. */
int me_filter_parse(const char *text, size_t len, Metaembed__Filter **out, char *err, size_t cap);
/* The JSON form, from an already-parsed value (the HTTP API's request body
 * member "filter"). The empty object {} is the empty filter (it matches
 * every document). */
int me_filter_from_json(const me_json_t *v, Metaembed__Filter **out, char *err, size_t cap);
/* Frees a tree built here; NULL is fine. */
void me_filter_free(Metaembed__Filter *f);

#endif
