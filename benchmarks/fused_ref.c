#include <immintrin.h>
#include <string.h>
#include <stdlib.h>
/* Reference for benchmarks/bench_fused.py --cref: the fused lstsq_grad loop of
 * xback._fused._chunks1 before it prefetched the next rows (k == 1, 4 rows per step, the same chunks, blocks and 64-byte
 * alignment peel) hand-written with AVX-512 intrinsics. It answers "is Numba's code the
 * limit?": built with `cc -O3 -march=native -shared -fPIC` (needs an AVX-512 CPU) and
 * timed next to the Numba kernel. Not part of the package. */
#define GEN(T, V, W, LD, FMA, SET1, ZERO, ADD, RED, NAME) \
void NAME(const T*A, long m, long n, const T*x, const T*y, long c0, long c1, long rows, long block, double*parts, long p){ \
  T*gbuf = aligned_alloc(64, ((n + 64) * sizeof(T) + 63) / 64 * 64); \
  T*gb = gbuf + ((64 - (((size_t)gbuf + p * sizeof(T)) % 64)) % 64) / sizeof(T); \
  long L = n - p, Lv = L / (4 * W) * (4 * W), Lv2 = L / (2 * W) * (2 * W); \
  for (long c = c0; c < c1; c++) { double*pc = parts + c * n; long lo = c * rows, hi = lo + rows < m ? lo + rows : m; \
    for (long b0 = lo; b0 < hi; b0 += block) { long b1 = b0 + block < hi ? b0 + block : hi; memset(gb, 0, n * sizeof(T)); long i = b0; \
      for (; i + 4 <= b1; i += 4) { const T*a0 = A + i * n, *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n; \
        V s[16]; for (int k = 0; k < 16; k++) s[k] = ZERO(); T t0 = 0, t1 = 0, t2 = 0, t3 = 0; \
        for (long j = 0; j < p; j++) { t0 += a0[j] * x[j]; t1 += a1[j] * x[j]; t2 += a2[j] * x[j]; t3 += a3[j] * x[j]; } \
        const T*b0p = a0 + p, *b1p = a1 + p, *b2p = a2 + p, *b3p = a3 + p, *xp = x + p; T*gp = gb + p; \
        for (long j = 0; j < Lv; j += 4 * W) for (int u = 0; u < 4; u++) { V xv = LD(xp + j + W * u); \
          s[u] = FMA(LD(b0p + j + W * u), xv, s[u]); s[4 + u] = FMA(LD(b1p + j + W * u), xv, s[4 + u]); \
          s[8 + u] = FMA(LD(b2p + j + W * u), xv, s[8 + u]); s[12 + u] = FMA(LD(b3p + j + W * u), xv, s[12 + u]); } \
        for (long j = Lv; j < L; j++) { t0 += b0p[j] * xp[j]; t1 += b1p[j] * xp[j]; t2 += b2p[j] * xp[j]; t3 += b3p[j] * xp[j]; } \
        T r0 = RED(ADD(ADD(s[0], s[1]), ADD(s[2], s[3]))) + t0 - y[i], r1 = RED(ADD(ADD(s[4], s[5]), ADD(s[6], s[7]))) + t1 - y[i + 1]; \
        T r2 = RED(ADD(ADD(s[8], s[9]), ADD(s[10], s[11]))) + t2 - y[i + 2], r3 = RED(ADD(ADD(s[12], s[13]), ADD(s[14], s[15]))) + t3 - y[i + 3]; \
        V v0 = SET1(r0), v1 = SET1(r1), v2 = SET1(r2), v3 = SET1(r3); \
        for (long j = 0; j < Lv2; j += 2 * W) for (int u = 0; u < 2; u++) { long o = j + W * u; V g = LD(gp + o); \
          g = FMA(LD(b0p + o), v0, g); g = FMA(LD(b1p + o), v1, g); g = FMA(LD(b2p + o), v2, g); g = FMA(LD(b3p + o), v3, g); ST(gp + o, g); } \
        for (long j = Lv2; j < L; j++) gp[j] += b0p[j] * r0 + b1p[j] * r1 + b2p[j] * r2 + b3p[j] * r3; \
        for (long j = 0; j < p; j++) gb[j] += a0[j] * r0 + a1[j] * r1 + a2[j] * r2 + a3[j] * r3; } \
      for (; i < b1; i++) { const T*a = A + i * n; T s = 0; for (long j = 0; j < n; j++) s += a[j] * x[j]; T r = s - y[i]; for (long j = 0; j < n; j++) gb[j] += a[j] * r; } \
      for (long j = 0; j < n; j++) pc[j] += gb[j]; } } \
  free(gbuf); }
#define ST _mm512_storeu_pd
GEN(double, __m512d, 8, _mm512_loadu_pd, _mm512_fmadd_pd, _mm512_set1_pd, _mm512_setzero_pd, _mm512_add_pd, _mm512_reduce_add_pd, fused_f64)
#undef ST
#define ST _mm512_storeu_ps
GEN(float, __m512, 16, _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_add_ps, _mm512_reduce_add_ps, fused_f32)
