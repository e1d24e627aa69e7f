using ILGPU;

namespace Nabla.Gpu.Kernels;

/// <summary>The sizes, leading dimensions, batch strides and flags of one batched GEMM call (see IKernelBackend.Gemm).</summary>
internal struct GemmArgs
{
    public int M, N, K, Lda, Ldb, Ldc;
    public long StrideA, StrideB, StrideC;
    public int TransA, TransB, Accumulate, HasBias;

    /// <summary>op(A)[row, k] of the matrix starting at <paramref name="a0"/>; 0 outside the matrix.</summary>
    public readonly float A(ArrayView<float> a, long a0, int row, int k) =>
        row < M && k < K ? a[a0 + (TransA != 0 ? (long)k * Lda + row : (long)row * Lda + k)] : 0f;

    /// <summary>op(B)[k, col]; 0 outside the matrix.</summary>
    public readonly float B(ArrayView<float> b, long b0, int k, int col) =>
        k < K && col < N ? b[b0 + (TransB != 0 ? (long)col * Ldb + k : (long)k * Ldb + col)] : 0f;

    /// <summary>C[row, col] = acc (+ bias[col]) (+ C[row, col]), skipping positions outside C.</summary>
    public readonly void Store(ArrayView<float> c, long c0, ArrayView<float> bias, int row, int col, float acc)
    {
        if (row >= M || col >= N) return;
        long at = c0 + (long)row * Ldc + col;
        if (HasBias != 0) acc += bias[col];
        if (Accumulate != 0) acc += c[at];
        c[at] = acc;
    }
}

/// <summary>
/// SGEMM in numbered versions, as llm.c's dev/cuda does: each keeps the previous one's idea and adds one. All take
/// the same arguments and handle every transpose combination, batch strides (grid z = batch index; stride 0 shares a
/// matrix), accumulation and bias, and any size (tiles are zero-padded on load and masked on store).
/// Grid x runs over column tiles and y over row tiles, so neighbouring groups share the same rows of A.
/// <list type="number">
/// <item>V1Naive: one thread per C element, reading its row of A and column of B from global memory: every input
/// is loaded K times from DRAM/L2, so it is bandwidth-bound at a few % of peak.</item>
/// <item>V2SharedTiles: 16×16 groups stage 16×16 tiles of A and B in shared memory; each global element is read
/// once per tile instead of once per thread (16× less traffic), but every multiply-add still needs two
/// shared-memory loads.</item>
/// <item>V3RegisterBlocking: 64×64 tiles, 256 threads each computing a 4×4 block held in registers; per k step a
/// thread loads 4 values of A and 4 of B from shared memory for 16 multiply-adds (arithmetic intensity ×4).
/// The tile of A is stored k-major so the values a thread needs are a contiguous column.</item>
/// <item>V4WideTiles: 128×128 tiles, 8×8 per thread (64 accumulators), BK = 8; each thread reads its A and B
/// fragments from shared memory as <see cref="F4"/> quadruples (two per operand per k step), 64 FMAs per 4 shared
/// loads. The shape of the classic "SGEMM from scratch" kernel that reaches most of cuBLAS's fp32 throughput.</item>
/// </list>
/// </summary>
internal static class Gemm
{
    public const int V1Tile = 16, V2Tile = 16;
    public const int V3Tile = 64, V3K = 16, V3Threads = 256;
    public const int V4Tile = 128, V4K = 8, V4Threads = 256;

    public static void V1Naive(GemmArgs g, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        int col = Grid.IdxX * V1Tile + Group.IdxX, row = Grid.IdxY * V1Tile + Group.IdxY, p = Grid.IdxZ;
        if (row >= g.M || col >= g.N) return;
        long a0 = p * g.StrideA, b0 = p * g.StrideB;
        float acc = 0;
        for (int k = 0; k < g.K; k++) acc += g.A(a, a0, row, k) * g.B(b, b0, k, col);
        g.Store(c, p * g.StrideC, bias, row, col, acc);
    }

    public static void V2SharedTiles(GemmArgs g, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        var tileA = SharedMemory.Allocate<float>(V2Tile * V2Tile);
        var tileB = SharedMemory.Allocate<float>(V2Tile * V2Tile);
        int tx = Group.IdxX, ty = Group.IdxY, p = Grid.IdxZ;
        int col = Grid.IdxX * V2Tile + tx, row = Grid.IdxY * V2Tile + ty;
        long a0 = p * g.StrideA, b0 = p * g.StrideB;
        float acc = 0;
        for (int k0 = 0; k0 < g.K; k0 += V2Tile)
        {
            tileA[ty * V2Tile + tx] = g.A(a, a0, row, k0 + tx);
            tileB[ty * V2Tile + tx] = g.B(b, b0, k0 + ty, col);
            Group.Barrier();
            for (int k = 0; k < V2Tile; k++) acc += tileA[ty * V2Tile + k] * tileB[k * V2Tile + tx];
            Group.Barrier();
        }
        g.Store(c, p * g.StrideC, bias, row, col, acc);
    }

    public static void V3RegisterBlocking(GemmArgs g, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        var tileA = SharedMemory.Allocate<float>(V3K * V3Tile); // [k][row]
        var tileB = SharedMemory.Allocate<float>(V3K * V3Tile); // [k][col]
        int t = Group.IdxX, tx = t % 16, ty = t / 16, p = Grid.IdxZ;
        int rowBase = Grid.IdxY * V3Tile, colBase = Grid.IdxX * V3Tile;
        long a0 = p * g.StrideA, b0 = p * g.StrideB;
        // Thread (tx, ty) owns rows ty + 16·r and columns tx + 16·c (r, c < 4): neighbouring threads read
        // neighbouring shared-memory words (no bank conflicts).
        F4 acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int k0 = 0; k0 < g.K; k0 += V3K)
        {
            for (int l = 0; l < V3K * V3Tile / V3Threads; l++)
            {
                int e = t + l * V3Threads;
                // Coalesced global reads: consecutive threads take consecutive addresses of the stored layout.
                int ak = g.TransA != 0 ? e / V3Tile : e % V3K, ar = g.TransA != 0 ? e % V3Tile : e / V3K;
                tileA[ak * V3Tile + ar] = g.A(a, a0, rowBase + ar, k0 + ak);
                int bk = g.TransB != 0 ? e % V3K : e / V3Tile, bc = g.TransB != 0 ? e / V3K : e % V3Tile;
                tileB[bk * V3Tile + bc] = g.B(b, b0, k0 + bk, colBase + bc);
            }
            Group.Barrier();
            for (int k = 0; k < V3K; k++)
            {
                var bv = new F4(tileB[k * V3Tile + tx], tileB[k * V3Tile + tx + 16], tileB[k * V3Tile + tx + 32], tileB[k * V3Tile + tx + 48]);
                acc0 = F4.Fma(acc0, tileA[k * V3Tile + ty], bv);
                acc1 = F4.Fma(acc1, tileA[k * V3Tile + ty + 16], bv);
                acc2 = F4.Fma(acc2, tileA[k * V3Tile + ty + 32], bv);
                acc3 = F4.Fma(acc3, tileA[k * V3Tile + ty + 48], bv);
            }
            Group.Barrier();
        }
        long c0 = p * g.StrideC;
        StoreSpread(g, c, c0, bias, rowBase + ty, colBase + tx, acc0);
        StoreSpread(g, c, c0, bias, rowBase + ty + 16, colBase + tx, acc1);
        StoreSpread(g, c, c0, bias, rowBase + ty + 32, colBase + tx, acc2);
        StoreSpread(g, c, c0, bias, rowBase + ty + 48, colBase + tx, acc3);
    }

    private static void StoreSpread(GemmArgs g, ArrayView<float> c, long c0, ArrayView<float> bias, int row, int col, F4 v)
    {
        g.Store(c, c0, bias, row, col, v.X);
        g.Store(c, c0, bias, row, col + 16, v.Y);
        g.Store(c, c0, bias, row, col + 32, v.Z);
        g.Store(c, c0, bias, row, col + 48, v.W);
    }

    public static void V4WideTiles(GemmArgs g, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        var tileA = SharedMemory.Allocate<float>(V4K * V4Tile); // [k][row]
        var tileB = SharedMemory.Allocate<float>(V4K * V4Tile); // [k][col]
        var quadsA = tileA.Cast<F4>();
        var quadsB = tileB.Cast<F4>();
        int t = Group.IdxX, tx = t % 16, ty = t / 16, p = Grid.IdxZ;
        int rowBase = Grid.IdxY * V4Tile, colBase = Grid.IdxX * V4Tile;
        long a0 = p * g.StrideA, b0 = p * g.StrideB;
        // Thread (tx, ty) owns rows 4·ty + i and 64 + 4·ty + i, columns 4·tx + j and 64 + 4·tx + j (i, j < 4):
        // four quadruples, each one vector read from shared memory.
        F4 r0a = default, r0b = default, r1a = default, r1b = default, r2a = default, r2b = default, r3a = default, r3b = default;
        F4 r4a = default, r4b = default, r5a = default, r5b = default, r6a = default, r6b = default, r7a = default, r7b = default;
        for (int k0 = 0; k0 < g.K; k0 += V4K)
        {
            for (int l = 0; l < V4K * V4Tile / V4Threads; l++)
            {
                int e = t + l * V4Threads;
                int ak = g.TransA != 0 ? e / V4Tile : e % V4K, ar = g.TransA != 0 ? e % V4Tile : e / V4K;
                tileA[ak * V4Tile + ar] = g.A(a, a0, rowBase + ar, k0 + ak);
                int bk = g.TransB != 0 ? e % V4K : e / V4Tile, bc = g.TransB != 0 ? e / V4K : e % V4Tile;
                tileB[bk * V4Tile + bc] = g.B(b, b0, k0 + bk, colBase + bc);
            }
            Group.Barrier();
            for (int k = 0; k < V4K; k++)
            {
                int q = k * V4Tile / 4;
                F4 aLo = quadsA[q + ty], aHi = quadsA[q + 16 + ty];
                F4 bLo = quadsB[q + tx], bHi = quadsB[q + 16 + tx];
                r0a = F4.Fma(r0a, aLo.X, bLo); r0b = F4.Fma(r0b, aLo.X, bHi);
                r1a = F4.Fma(r1a, aLo.Y, bLo); r1b = F4.Fma(r1b, aLo.Y, bHi);
                r2a = F4.Fma(r2a, aLo.Z, bLo); r2b = F4.Fma(r2b, aLo.Z, bHi);
                r3a = F4.Fma(r3a, aLo.W, bLo); r3b = F4.Fma(r3b, aLo.W, bHi);
                r4a = F4.Fma(r4a, aHi.X, bLo); r4b = F4.Fma(r4b, aHi.X, bHi);
                r5a = F4.Fma(r5a, aHi.Y, bLo); r5b = F4.Fma(r5b, aHi.Y, bHi);
                r6a = F4.Fma(r6a, aHi.Z, bLo); r6b = F4.Fma(r6b, aHi.Z, bHi);
                r7a = F4.Fma(r7a, aHi.W, bLo); r7b = F4.Fma(r7b, aHi.W, bHi);
            }
            Group.Barrier();
        }
        long c0 = p * g.StrideC;
        int lo = rowBase + 4 * ty, hi = rowBase + 64 + 4 * ty, cLo = colBase + 4 * tx, cHi = colBase + 64 + 4 * tx;
        StoreRow(g, c, c0, bias, lo, cLo, cHi, r0a, r0b);
        StoreRow(g, c, c0, bias, lo + 1, cLo, cHi, r1a, r1b);
        StoreRow(g, c, c0, bias, lo + 2, cLo, cHi, r2a, r2b);
        StoreRow(g, c, c0, bias, lo + 3, cLo, cHi, r3a, r3b);
        StoreRow(g, c, c0, bias, hi, cLo, cHi, r4a, r4b);
        StoreRow(g, c, c0, bias, hi + 1, cLo, cHi, r5a, r5b);
        StoreRow(g, c, c0, bias, hi + 2, cLo, cHi, r6a, r6b);
        StoreRow(g, c, c0, bias, hi + 3, cLo, cHi, r7a, r7b);
    }

    private static void StoreRow(GemmArgs g, ArrayView<float> c, long c0, ArrayView<float> bias, int row, int cLo, int cHi, F4 lo, F4 hi)
    {
        StoreQuad(g, c, c0, bias, row, cLo, lo);
        StoreQuad(g, c, c0, bias, row, cHi, hi);
    }

    private static void StoreQuad(GemmArgs g, ArrayView<float> c, long c0, ArrayView<float> bias, int row, int col, F4 v)
    {
        g.Store(c, c0, bias, row, col, v.X);
        g.Store(c, c0, bias, row, col + 1, v.Y);
        g.Store(c, c0, bias, row, col + 2, v.Z);
        g.Store(c, c0, bias, row, col + 3, v.W);
    }
}
