using Nabla.Gpu;
using Nabla.Kernels.Reference;
using static Nabla.Tests.Gpu.GpuCheck;

namespace Nabla.Tests.Gpu;

/// <summary>
/// Every SGEMM version against the reference: all four transpose combinations; sizes of 1, primes, and one
/// below / at / above each version's tile (16, 64, 128) and k step (8, 16); padded leading dimensions;
/// batches with a shared (stride 0) operand; accumulate and bias. Integer-valued inputs keep every product and
/// sum exact in float, so the comparison is exact and any indexing mistake shows.
/// </summary>
public sealed unsafe class GpuGemmTests
{
    public static TheoryData<GemmVersion> Versions()
    {
        var data = new TheoryData<GemmVersion>();
        foreach (var v in Enum.GetValues<GemmVersion>()) data.Add(v);
        return data;
    }

    /// <summary>Per version: sizes of 1, an empty k, and one below / above its tile and k step (kept small: on the CPU
    /// accelerator every group barrier synchronises 256 OS threads).</summary>
    private static (int M, int N, int K)[] Shapes(GemmVersion version) => version switch
    {
        GemmVersion.V1Naive or GemmVersion.V2SharedTiles => [(1, 1, 1), (1, 13, 7), (7, 1, 13), (5, 7, 0), (15, 17, 9), (16, 16, 16), (17, 15, 33)],
        GemmVersion.V3RegisterBlocking => [(1, 1, 1), (5, 7, 0), (13, 31, 5), (63, 65, 17), (64, 64, 16)],
        _ => [(1, 1, 1), (5, 7, 0), (13, 31, 5), (127, 129, 9), (128, 128, 8)],
    };

    [Theory, MemberData(nameof(Versions))]
    public void AllTransposesAndEdgeSizes(GemmVersion version)
    {
        var g = new Generator(29);
        foreach (var (m, n, k) in Shapes(version))
            foreach (bool transA in new[] { false, true })
                foreach (bool transB in new[] { false, true })
                    Check(version, g, m, n, k, transA, transB, batch: 1, pad: 0, accumulate: false, bias: false);
    }

    [Theory, MemberData(nameof(Versions))]
    public void BatchesPaddingAccumulateAndBias(GemmVersion version)
    {
        var g = new Generator(31);
        Check(version, g, 19, 23, 11, false, true, batch: 3, pad: 3, accumulate: true, bias: true);
        Check(version, g, 33, 70, 21, true, false, batch: 2, pad: 1, accumulate: false, bias: true);
        Check(version, g, 9, 130, 5, true, true, batch: 4, pad: 2, accumulate: true, bias: false);
        Check(version, g, 9, 12, 6, false, false, batch: 3, pad: 0, accumulate: false, bias: false, shareB: true);
    }

    private static void Check(GemmVersion version, Generator g, int m, int n, int k, bool transA, bool transB, int batch, int pad,
        bool accumulate, bool bias, bool shareB = false)
    {
        // Stored shapes: A is m × k (k × m when transposed), B is k × n (n × k); rows padded by `pad` columns.
        int aRows = transA ? k : m, aCols = transA ? m : k, bRows = transB ? n : k, bCols = transB ? k : n;
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        long strideA = (long)aRows * lda, strideB = shareB ? 0 : (long)bRows * ldb, strideC = (long)m * ldc;
        var a = SmallInts(g, Math.Max(1, strideA * batch), 3);
        var b = SmallInts(g, Math.Max(1, shareB ? (long)bRows * ldb : strideB * batch), 3);
        var c = SmallInts(g, Math.Max(1, strideC * batch), 3);
        var biasValues = SmallInts(g, Math.Max(1, n), 3);
        var expected = (float[])c.Clone();
        fixed (float* pa = a, pb = b, pc = expected, pbias = biasValues)
            ReferenceBackend.Instance.Gemm(transA, transB, m, n, k, pa, lda, strideA, pb, ldb, strideB, pc, ldc, strideC, batch, accumulate,
                bias ? pbias : null);
        using var d = new DeviceArrays();
        var dc = d.Upload(c);
        GpuTestDevice.Kernels.Gemm(version, transA, transB, m, n, k, d.Upload(a), lda, strideA, d.Upload(b), ldb, strideB, dc, ldc, strideC,
            batch, accumulate, bias ? d.Upload(biasValues) : null);
        Near(expected, d.Read(dc, c.Length),
            $"{version} m={m} n={n} k={k} transA={transA} transB={transB} batch={batch} pad={pad} accumulate={accumulate} bias={bias}", 0, 0);
    }
}
