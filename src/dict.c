/* dict.c - a string-keyed hash table with separate chaining
 *
 * Power-of-two bucket array, FNV-1a hash mixed with a per-process seed so
 * that bucket placement cannot be predicted from outside. The table doubles
 * when the load factor reaches 1, so chains stay short.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dict.h"
#include "util.h"

#define DICT_INITIAL_BUCKETS	64

struct dict_entry {
	struct dict_entry *next;
	uint64_t hash;
	void *val;
	char key[];			/* copied, NUL-terminated */
};

struct dict {
	struct dict_entry **buckets;
	size_t nbuckets;		/* power of two */
	size_t count;
};

static uint64_t dict_seed;

/* dict_hash - FNV-1a over the key, seeded */
static uint64_t
dict_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ dict_seed;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	/* final avalanche, so that the low bits used for the index mix well */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct dict *
dict_new(void)
{
	struct dict *d = xcalloc(1, sizeof(*d));

	if (dict_seed == 0)
		dict_seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^
		    (uint64_t)(uintptr_t)d;
	d->nbuckets = DICT_INITIAL_BUCKETS;
	d->buckets = xcalloc(d->nbuckets, sizeof(*d->buckets));
	return d;
}

void
dict_free(struct dict *d, dict_free_fn free_val)
{
	struct dict_entry *e, *next;

	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nbuckets; i++) {
		for (e = d->buckets[i]; e; e = next) {
			next = e->next;
			if (free_val)
				free_val(e->val);
			free(e);
		}
	}
	free(d->buckets);
	free(d);
}

/* dict_find - the link pointing at key's entry (or at the chain's end) */
static struct dict_entry **
dict_find(const struct dict *d, const char *key, uint64_t h)
{
	struct dict_entry **pp = &d->buckets[h & (d->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

void *
dict_get(const struct dict *d, const char *key)
{
	struct dict_entry *e = *dict_find(d, key, dict_hash(key));

	return e ? e->val : NULL;
}

/* dict_grow - double the bucket array and rehash */
static void
dict_grow(struct dict *d)
{
	size_t n = d->nbuckets * 2;
	struct dict_entry **b = xcalloc(n, sizeof(*b));
	struct dict_entry *e, *next;

	for (size_t i = 0; i < d->nbuckets; i++) {
		for (e = d->buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->nbuckets = n;
}

void *
dict_put(struct dict *d, const char *key, void *val)
{
	uint64_t h = dict_hash(key);
	struct dict_entry **pp = dict_find(d, key, h), *e;
	size_t klen;
	void *old;

	if (*pp) {
		old = (*pp)->val;
		(*pp)->val = val;
		return old;
	}
	klen = strlen(key);
	e = xmalloc(sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->hash = h;
	e->val = val;
	e->next = NULL;
	*pp = e;
	if (++d->count >= d->nbuckets)
		dict_grow(d);
	return NULL;
}

void *
dict_del(struct dict *d, const char *key)
{
	struct dict_entry **pp = dict_find(d, key, dict_hash(key)), *e;
	void *val;

	if ((e = *pp) == NULL)
		return NULL;
	*pp = e->next;
	val = e->val;
	free(e);
	d->count--;
	return val;
}

size_t
dict_count(const struct dict *d)
{
	return d->count;
}

int
dict_walk(const struct dict *d, dict_walk_fn fn, void *arg)
{
	int r;

	for (size_t i = 0; i < d->nbuckets; i++)
		for (struct dict_entry *e = d->buckets[i]; e; e = e->next)
			if ((r = fn(e->key, e->val, arg)) != 0)
				return r;
	return 0;
}
