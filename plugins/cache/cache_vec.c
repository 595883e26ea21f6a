#include "cache_vec.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1
#endif

bool cache_vec_normalise(float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    if (!(s > 0) || !isfinite(s))
        return false;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < n; i++)
        v[i] *= inv;
    return true;
}

/* Eight independent sums: the loop the compiler turns into SIMD without
 * reassociating a single float reduction. */
float cache_vec_dot_portable(const float *a, const float *b, size_t n)
{
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        t += a[i] * b[i];
    return t;
}

#ifdef HAVE_AVX2_KERNEL
/* Four 8-wide FMA accumulators: enough independent chains to hide the
 * FMA latency, 32 floats per pass. */
__attribute__((target("avx2,fma"))) static float
dot_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 =
            _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16),
                             _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24),
                             _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 =
            _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h =
        _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float t = _mm_cvtss_f32(h);
    for (; i < n; i++)
        t += a[i] * b[i];
    return t;
}

/* 16 int8 widened to int16 per half, multiplied and summed in pairs into
 * int32 (|product pair| <= 2 * 127 * 127, far from overflow). */
__attribute__((target("avx2"))) static int32_t
dot8_avx2(const int8_t *a, const int8_t *b, size_t n)
{
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(a + i));
        __m256i vb = _mm256_loadu_si256((const __m256i *)(b + i));
        __m256i alo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(va));
        __m256i ahi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(va, 1));
        __m256i blo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(vb));
        __m256i bhi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(vb, 1));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(alo, blo));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(ahi, bhi));
    }
    __m256i acc = _mm256_add_epi32(acc0, acc1);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc),
                              _mm256_extracti128_si256(acc, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    int32_t t = _mm_cvtsi128_si32(h);
    for (; i < n; i++)
        t += (int32_t)a[i] * b[i];
    return t;
}
#endif

float cache_vec_quantise(const float *v, size_t n, int8_t *q)
{
    float max = 0;
    for (size_t i = 0; i < n; i++)
        max = fabsf(v[i]) > max ? fabsf(v[i]) : max;
    if (!(max > 0)) {
        for (size_t i = 0; i < n; i++)
            q[i] = 0;
        return 0;
    }
    float inv = 127.0f / max;
    for (size_t i = 0; i < n; i++)
        q[i] = (int8_t)lrintf(v[i] * inv);
    return max / 127.0f;
}

int32_t cache_vec_dot8_portable(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += (int32_t)a[i] * b[i];
    return t;
}

cache_dot8_fn cache_vec_dot8_kernel(void)
{
#ifdef HAVE_AVX2_KERNEL
    if (__builtin_cpu_supports("avx2"))
        return dot8_avx2;
#endif
    return cache_vec_dot8_portable;
}

cache_dot_fn cache_vec_dot_kernel(void)
{
#ifdef HAVE_AVX2_KERNEL
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return dot_avx2;
#endif
    return cache_vec_dot_portable;
}

float cache_vec_dot(const float *a, const float *b, size_t n)
{
    return cache_vec_dot_kernel()(a, b, n);
}
