/* cache_vec: the vector arithmetic of the semantic index. The dot product
 * is the index's whole cost (a graph search computes about a thousand of
 * them), so it has an AVX2+FMA kernel picked at run time on CPUs that
 * have it, and a portable one the compiler vectorises for the rest. */
#ifndef SLUICE_CACHE_VEC_H
#define SLUICE_CACHE_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef float (*cache_dot_fn)(const float *a, const float *b, size_t n);

/* Scales v to unit length; false for a zero or non-finite vector. */
bool cache_vec_normalise(float *v, size_t n);
/* The fastest kernel this CPU runs (resolve once, call many times). */
cache_dot_fn cache_vec_dot_kernel(void);
float cache_vec_dot(const float *a, const float *b, size_t n);
/* The portable kernel, for tests that compare the two. */
float cache_vec_dot_portable(const float *a, const float *b, size_t n);

/* int8 copies of unit vectors for the graph's walk: a quarter of the
 * bytes to read per comparison (memory, not arithmetic, is what a search
 * waits on). q[i] = round(v[i] / scale), scale = max|v[i]| / 127, so
 * a.b ~ scale_a * scale_b * dot8(qa, qb). Returns the scale (0 for a zero
 * vector). */
float cache_vec_quantise(const float *v, size_t n, int8_t *q);
typedef int32_t (*cache_dot8_fn)(const int8_t *a, const int8_t *b, size_t n);
cache_dot8_fn cache_vec_dot8_kernel(void);
int32_t cache_vec_dot8_portable(const int8_t *a, const int8_t *b, size_t n);

#endif
