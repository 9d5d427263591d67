/* dict.h - a string-keyed hash table (keys copied, values borrowed)
 *
 * Used for the store's in-memory index: O(1) lookups on the event loop.
 * Not thread-safe: one thread owns a dict.
 */
#ifndef MX_DICT_H
#define MX_DICT_H

#include <stddef.h>

struct dict;

typedef void (*dict_free_fn)(void *val);
/* return non-zero to stop the walk */
typedef int (*dict_walk_fn)(const char *key, void *val, void *arg);

struct dict *dict_new(void);
/* dict_free - free the table; free_val (may be NULL) is called on each value */
void dict_free(struct dict *, dict_free_fn free_val);
/* dict_get - the value stored under key, or NULL */
void *dict_get(const struct dict *, const char *key);
/* dict_put - store val under key; returns the value it replaced, or NULL */
void *dict_put(struct dict *, const char *key, void *val);
/* dict_del - remove key; returns its value, or NULL when absent */
void *dict_del(struct dict *, const char *key);
size_t dict_count(const struct dict *);
/* dict_walk - call fn on every entry, in no particular order; fn must not
 * modify the dict. Returns the first non-zero fn result, or 0. */
int dict_walk(const struct dict *, dict_walk_fn fn, void *arg);

#endif
