// The decision record for plugins/cache keeping its own HNSW: hnswlib 0.6.2
// (Debian's libhnswlib-dev, header-only C++) on the same vectors as
// bench_cache_lookup's semantic cells (same generator and seed, same M = 16
// and ef_construction = 100), held-out queries, recall@1 against brute
// force. Not part of the build: bench/cache/index.sh runs it with HNSWLIB=1.
//     g++ -O3 -mavx2 -mfma -o hnswlib_compare hnswlib_compare.cpp
//     ./hnswlib_compare N DIM clustered|latent
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

// The generator of bench_cache_lookup.c (draw()), term for term, so both
// programs index the same vectors and ask the same queries.
static uint64_t rng = 88172645463325252ull;
static uint64_t next()
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double gaussian()
{
    double u = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
    double w = ((double)(next() >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}
enum { LATENT = 64, CLUSTERS = 1000 };
static std::vector<float> projection, centres;
static bool topics;
static void normalise(float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < n; i++)
        v[i] *= inv;
}
static void draw(float *v, size_t dim)
{
    float z[LATENT];
    const float *c = &centres[(next() % CLUSTERS) * LATENT];
    for (size_t l = 0; l < LATENT; l++)
        z[l] = topics ? c[l] + 0.6f * (float)gaussian() : (float)gaussian();
    for (size_t d = 0; d < dim; d++) {
        const float *p = &projection[d * LATENT];
        float x = 0;
        for (size_t l = 0; l < LATENT; l++)
            x += p[l] * z[l];
        v[d] = x + 0.1f * (float)gaussian();
    }
    normalise(v, dim);
}
static double now()
{
    return std::chrono::duration<double>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    size_t n = strtoull(argv[1], NULL, 10), dim = strtoull(argv[2], NULL, 10);
    topics = strcmp(argv[3], "clustered") == 0;
    projection.resize(dim * LATENT);
    centres.resize(CLUSTERS * LATENT);
    for (auto &x : projection)
        x = (float)(gaussian() / sqrt((double)LATENT));
    for (auto &x : centres)
        x = (float)gaussian();
    std::vector<float> v(n * dim);
    for (size_t i = 0; i < n; i++)
        draw(&v[i * dim], dim);
    size_t nq = n >= 1000000 ? 500 : 1000;
    std::vector<float> q(nq * dim);
    for (size_t i = 0; i < nq; i++)
        draw(&q[i * dim], dim);
    std::vector<size_t> best(nq);
    for (size_t j = 0; j < nq; j++) {
        float b = -3;
        for (size_t i = 0; i < n; i++) {
            float s = 0;
            for (size_t d = 0; d < dim; d++)
                s += q[j * dim + d] * v[i * dim + d];
            if (s > b) {
                b = s;
                best[j] = i;
            }
        }
    }
    hnswlib::InnerProductSpace space(dim);
    double t0 = now();
    hnswlib::HierarchicalNSW<float> ix(&space, n, 16, 100, 42);
    for (size_t i = 0; i < n; i++)
        ix.addPoint(&v[i * dim], i);
    double build = now() - t0;
    const char *efs = getenv("EF") ? getenv("EF") : "32,64,128";
    std::vector<char> list(efs, efs + strlen(efs) + 1);
    for (char *e = strtok(list.data(), ","); e; e = strtok(NULL, ",")) {
        ix.setEf(strtoul(e, NULL, 10));
        std::vector<double> t(nq);
        size_t ok = 0;
        for (size_t j = 0; j < nq; j++) {
            double a = now();
            auto r = ix.searchKnn(&q[j * dim], 1);
            t[j] = now() - a;
            ok += r.top().second == best[j];
        }
        std::sort(t.begin(), t.end());
        printf("| hnswlib %zu | %zu | %s | %s | %.0f | %.0f | - | - | %.3f | - "
               "| - | %.1f | %.1f | - |\n",
               n, dim, argv[3], e, t[nq / 2] * 1e6, t[nq * 99 / 100] * 1e6,
               (double)ok / nq, build, build * 100000.0 / (double)n);
        fflush(stdout);
    }
    return 0;
}
