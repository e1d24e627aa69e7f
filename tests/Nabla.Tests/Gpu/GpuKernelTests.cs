using System.Reflection;
using Nabla.Gpu;
using Nabla.Kernels;
using Nabla.Kernels.Reference;
using static Nabla.Tests.Gpu.GpuCheck;

namespace Nabla.Tests.Gpu;

/// <summary>
/// The GPU kernels (run on ILGPU's CPU accelerator) against <see cref="ReferenceBackend"/>, the spec: inputs are
/// uploaded to device buffers of the runtime, the kernel runs, the result is copied back and compared. Sizes include
/// 0, 1, odd sizes and sizes that are not multiples of the 256-thread groups. Integer-valued data where the result
/// is then exact (copies, sums, max, embeddings), so any indexing mistake shows.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed unsafe class GpuKernelTests
{
    private static readonly ReferenceBackend Ref = ReferenceBackend.Instance;
    private static GpuBackend Gpu => GpuTestDevice.Kernels;
    private static readonly int[] Sizes = [0, 1, 7, 33, 257, 1000];

    [Fact]
    public void Fill()
    {
        using var d = new DeviceArrays();
        foreach (var n in Sizes)
        {
            var y = d.Filled(n + 1, 42);
            Gpu.Fill(y, -1.25f, n);
            var got = d.Read(y, n + 1);
            Assert.All(got.Take(n), v => Assert.Equal(-1.25f, v));
            Assert.Equal(42f, got[n]); // nothing written past n
        }
    }

    [Fact]
    public void AddInt()
    {
        using var d = new DeviceArrays();
        var x = d.Upload(new[] { 0, 5, -3, 41 });
        Gpu.AddInt(x, 2, 3);
        Assert.Equal(new[] { 2, 7, -1, 41 }, d.Read(x, 4)); // nothing written past n
    }

    public static TheoryData<int[], int[], int[], bool> CopyCases() => new()
    {
        // shape, source strides, destination strides, accumulate
        { [5], [1], [1], false },
        { [3, 4], [1, 3], [4, 1], false },                 // transpose
        { [2, 3, 4], [0, 4, 1], [12, 4, 1], false },       // broadcast read
        { [2, 1, 3, 5], [15, 15, 5, 1], [1, 1, 2, 6], false }, // size-1 dimension, permuted write
        { [2, 2, 2, 2, 2, 2, 3], [96, 48, 24, 12, 6, 3, 1], [1, 2, 4, 8, 16, 32, 64], false }, // 7 dims, none mergeable into 6
        { [4, 3], [3, 1], [1, 1], true },                  // overlapping destination (unfold backward): every contribution adds
        { [0, 3], [3, 1], [3, 1], false },
    };

    [Theory, MemberData(nameof(CopyCases))]
    public void Copy(int[] shape, int[] srcStrides, int[] dstStrides, bool accumulate)
    {
        long srcSize = Extent(shape, srcStrides), dstSize = Extent(shape, dstStrides);
        var g = new Generator(7);
        var src = SmallInts(g, srcSize);
        var dst = SmallInts(g, dstSize);
        var expected = (float[])dst.Clone();
        fixed (float* s = src, e = expected) Ref.Copy(s, srcStrides, e, dstStrides, shape, accumulate);
        using var d = new DeviceArrays();
        var dd = d.Upload(dst);
        bool tooManyDims = shape.Length == 7;
        if (tooManyDims)
        {
            // More strided dimensions than the kernel layout holds: a clear error naming the op.
            var error = Assert.Throws<NotSupportedException>(() => Gpu.Copy(d.Upload(src), srcStrides, dd, dstStrides, shape, accumulate));
            Assert.Contains("Copy", error.Message);
            return;
        }
        Gpu.Copy(d.Upload(src), srcStrides, dd, dstStrides, shape, accumulate);
        Near(expected, d.Read(dd, dstSize), $"Copy {string.Join("x", shape)}", 0, 0);
    }

    private static long Extent(int[] shape, int[] strides)
    {
        if (shape.Any(s => s == 0)) return 1;
        long last = 0;
        for (int i = 0; i < shape.Length; i++) last += (long)(shape[i] - 1) * strides[i];
        return last + 1;
    }

    /// <summary>Every <see cref="IUnaryFunction"/> in the library, found by reflection, so a new one is tested here
    /// without editing this file.</summary>
    public static TheoryData<Type> UnaryFunctions()
    {
        var data = new TheoryData<Type>();
        foreach (var t in typeof(IUnaryFunction).Assembly.GetTypes()
                     .Where(t => t.IsValueType && typeof(IUnaryFunction).IsAssignableFrom(t)).OrderBy(t => t.Name))
            data.Add(t);
        return data;
    }

    /// <summary>Both versions against the double-precision spec: version 1 is the spec itself, version 2 (float, the
    /// CPU backend's vector forms) is held to the CPU backend's tolerance of a few ulps.</summary>
    [Theory, MemberData(nameof(UnaryFunctions))]
    public void UnaryForwardAndBackward(Type function)
    {
        var gpu = Gpu;
        var saved = gpu.UnaryKernel;
        try
        {
            foreach (var version in Enum.GetValues<UnaryKernelVersion>())
            {
                gpu.UnaryKernel = version;
                typeof(GpuKernelTests).GetMethod(nameof(CheckUnary), BindingFlags.NonPublic | BindingFlags.Static)!
                    .MakeGenericMethod(function).Invoke(null, [version]);
            }
        }
        finally { gpu.UnaryKernel = saved; }
    }

    private static void CheckUnary<F>(UnaryKernelVersion version) where F : struct, IUnaryFunction
    {
        var g = new Generator(11);
        foreach (var n in Sizes)
        {
            // The CPU backend's test inputs: each function's domain, zeros where derivatives have special cases.
            const float alpha = 2.5f;
            var x = Nabla.Tests.Kernels.CpuVsReferenceTests.UnaryInput(typeof(F), alpha, g, n);
            var dy = Normal(g, n);
            var y = new float[n];
            var dx = new float[n];
            fixed (float* px = x, py = y, pdy = dy, pdx = dx)
            {
                Ref.Unary<F>(alpha, px, py, n);
                Ref.UnaryBackward<F>(alpha, px, py, pdy, pdx, n);
            }
            using var d = new DeviceArrays();
            float* gx = d.Upload(x), gy = d.Filled(n), gdy = d.Upload(dy), gdx = d.Filled(n);
            Gpu.Unary<F>(alpha, gx, gy, n);
            Near(y, d.Read(gy, n), $"{F.Name} {version} n={n}", rtol: 4e-6, atol: 1e-7);
            // The backward gets the spec's y, as on the CPU, so the derivative is compared on its own.
            Gpu.UnaryBackward<F>(alpha, gx, d.Upload(y), gdy, gdx, n);
            Near(dx, d.Read(gdx, n), $"{F.Name} backward {version} n={n}");
        }
    }

    public static TheoryData<BinaryOp> BinaryOps()
    {
        var data = new TheoryData<BinaryOp>();
        foreach (var op in Enum.GetValues<BinaryOp>()) data.Add(op);
        return data;
    }

    [Theory, MemberData(nameof(BinaryOps))]
    public void BinaryWithBroadcast(BinaryOp op)
    {
        var g = new Generator(3);
        int[] shape = [3, 5, 7];
        var a = SmallInts(g, 3 * 5 * 7, 3);
        var b = SmallInts(g, 5, 3);          // broadcast along dims 0 and 2
        a[4] = float.NaN;                      // NaN handling of maximum / minimum
        var expected = new float[a.Length];
        int[] aStrides = [35, 7, 1], bStrides = [0, 1, 0];
        fixed (float* pa = a, pb = b, pe = expected) Ref.Binary(op, pa, aStrides, pb, bStrides, pe, shape);
        using var d = new DeviceArrays();
        var y = d.Filled(a.Length);
        Gpu.Binary(op, d.Upload(a), aStrides, d.Upload(b), bStrides, y, shape);
        Near(expected, d.Read(y, a.Length), $"Binary {op}", 1e-6, 0);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 1, 5)]
    [InlineData(2, 7, 1)]
    [InlineData(4, 33, 9)]
    [InlineData(1, 5000, 1)]
    public void SumAndMax(int outer, int r, int inner)
    {
        var g = new Generator(5);
        var x = SmallInts(g, (long)outer * r * inner);
        if (x.Length > 10) x[10] = float.NaN; // the NaN wins max and its argmax, as in PyTorch
        int n = outer * inner;
        var sum = new float[n];
        var max = new float[n];
        var argmax = new int[n];
        fixed (float* px = x, ps = sum, pm = max)
        fixed (int* pa = argmax)
        {
            Ref.Sum(px, ps, outer, r, inner);
            Ref.Max(px, pm, pa, outer, r, inner);
        }
        using var d = new DeviceArrays();
        float* gx = d.Upload(x), gs = d.Filled(n), gm = d.Filled(n);
        int* ga = d.Upload(new int[n]);
        Gpu.Sum(gx, gs, outer, r, inner);
        Gpu.Max(gx, gm, ga, outer, r, inner);
        Near(sum, d.Read(gs, n), "Sum", 0, 0);
        Near(max, d.Read(gm, n), "Max", 0, 0);
        Assert.Equal(argmax, d.Read(ga, n));
        Gpu.Max(gx, gm, null, outer, r, inner); // argmax is optional
        Near(max, d.Read(gm, n), "Max without argmax", 0, 0);
    }

    [Theory]
    [InlineData(RowKernelVersion.V1RowPerThread)]
    [InlineData(RowKernelVersion.V2BlockPerRow)]
    public void SoftmaxAndBackward(RowKernelVersion version)
    {
        var gpu = Gpu;
        var saved = gpu.SoftmaxKernel;
        gpu.SoftmaxKernel = version;
        try
        {
            var g = new Generator(9);
            foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (5, 256), (2, 1000) })
                foreach (bool log in new[] { false, true })
                {
                    var x = Normal(g, rows * cols, 3f);
                    var dy = Normal(g, rows * cols);
                    var y = new float[x.Length];
                    var dx = new float[x.Length];
                    fixed (float* px = x, py = y, pdy = dy, pdx = dx)
                    {
                        Ref.Softmax(px, py, rows, cols, log);
                        Ref.SoftmaxBackward(py, pdy, pdx, rows, cols, log);
                    }
                    using var d = new DeviceArrays();
                    float* gy = d.Filled(x.Length), gdx = d.Filled(x.Length);
                    gpu.Softmax(d.Upload(x), gy, rows, cols, log);
                    string what = $"{version} {rows}x{cols} log={log}";
                    Near(y, d.Read(gy, x.Length), what, 1e-5, 1e-6);
                    gpu.SoftmaxBackward(gy, d.Upload(dy), gdx, rows, cols, log);
                    Near(dx, d.Read(gdx, x.Length), what + " backward", 1e-4, 1e-5);
                }
        }
        finally { gpu.SoftmaxKernel = saved; }
    }

    [Theory]
    [InlineData(1, 1, 0f)]
    [InlineData(5, 7, 0f)]
    [InlineData(6, 300, 0.1f)]
    [InlineData(3, 1000, 0f)]
    public void CrossEntropyAndBackward(int rows, int classes, float smoothing)
    {
        var g = new Generator(13);
        var logits = Normal(g, rows * classes, 2f);
        var targets = Enumerable.Range(0, rows).Select(_ => g.NextInt(classes)).ToArray();
        const int ignore = -100;
        if (rows > 2) targets[1] = ignore;
        var dloss = Normal(g, rows);
        var loss = new float[rows];
        var dlogits = new float[logits.Length];
        fixed (float* pl = logits, pd = dloss, ploss = loss, pg = dlogits)
        fixed (int* pt = targets)
        {
            Ref.CrossEntropy(pl, pt, ploss, rows, classes, ignore, smoothing);
            Ref.CrossEntropyBackward(pl, pt, pd, pg, rows, classes, ignore, smoothing);
        }
        using var d = new DeviceArrays();
        float* gl = d.Upload(logits), gloss = d.Filled(rows), gg = d.Filled(logits.Length);
        int* gt = d.Upload(targets);
        Gpu.CrossEntropy(gl, gt, gloss, rows, classes, ignore, smoothing);
        Near(loss, d.Read(gloss, rows), "CrossEntropy", 1e-5, 1e-5);
        Gpu.CrossEntropyBackward(gl, gt, d.Upload(dloss), gg, rows, classes, ignore, smoothing);
        Near(dlogits, d.Read(gg, logits.Length), "CrossEntropyBackward", 1e-4, 1e-6);
    }

    [Fact]
    public void CrossEntropyReportsTheFirstBadTargetLikeTheReference()
    {
        using var d = new DeviceArrays();
        float* logits = d.Upload(new float[4 * 3]);
        int* targets = d.Upload([0, 2, 5, -1]);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.CrossEntropy(logits, targets, d.Filled(4), 4, 3, -100, 0));
        Assert.Contains("Target 5 at row 2 is outside the 3 classes", error.Message);
        error = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.CrossEntropyBackward(logits, targets, d.Filled(4, 1), d.Filled(12), 4, 3, -100, 0));
        Assert.Contains("Target 5 at row 2", error.Message);
        // The flag is reset between calls: a good call after a bad one succeeds.
        Gpu.CrossEntropy(logits, d.Upload([0, 1, 2, 0]), d.Filled(4), 4, 3, -100, 0);
    }

    [Theory]
    [InlineData(RowKernelVersion.V1RowPerThread)]
    [InlineData(RowKernelVersion.V2BlockPerRow)]
    public void LayerNormAndBackward(RowKernelVersion version)
    {
        var gpu = Gpu;
        var saved = gpu.LayerNormKernel;
        gpu.LayerNormKernel = version;
        try
        {
            var g = new Generator(17);
            foreach (var (rows, cols) in new[] { (1, 1), (3, 7), (4, 300), (2, 768) })
                foreach (bool affine in new[] { true, false })
                {
                    var x = Normal(g, rows * cols, 2f);
                    for (int i = 0; i < x.Length; i++) x[i] += 5; // a mean far from 0: the variance must not cancel
                    var w = affine ? Normal(g, cols) : null;
                    var b = affine ? Normal(g, cols) : null;
                    var dy = Normal(g, rows * cols);
                    var y = new float[x.Length];
                    var (mean, rstd, dx) = (new float[rows], new float[rows], new float[x.Length]);
                    // dw and db accumulate: start them from non-zero values.
                    var dw = Normal(g, cols);
                    var db = Normal(g, cols);
                    var (dwGpu, dbGpu) = ((float[])dw.Clone(), (float[])db.Clone());
                    fixed (float* px = x, pw = w, pb = b, py = y, pm = mean, pr = rstd, pdy = dy, pdx = dx, pdw = dw, pdb = db)
                    {
                        Ref.LayerNorm(px, pw, pb, py, pm, pr, rows, cols, 1e-5f);
                        Ref.LayerNormBackward(pdy, px, pw, pm, pr, pdx, affine ? pdw : null, affine ? pdb : null, rows, cols);
                    }
                    using var d = new DeviceArrays();
                    float* gx = d.Upload(x), gw = affine ? d.Upload(w!) : null, gb = affine ? d.Upload(b!) : null;
                    float* gy = d.Filled(x.Length), gm = d.Filled(rows), gr = d.Filled(rows), gdx = d.Filled(x.Length);
                    float* gdw = d.Upload(dwGpu), gdb = d.Upload(dbGpu);
                    gpu.LayerNorm(gx, gw, gb, gy, gm, gr, rows, cols, 1e-5f);
                    string what = $"{version} {rows}x{cols} affine={affine}";
                    Near(y, d.Read(gy, x.Length), what, 1e-4, 1e-5);
                    Near(mean, d.Read(gm, rows), what + " mean", 1e-5, 1e-5);
                    Near(rstd, d.Read(gr, rows), what + " rstd", 1e-4, 1e-5);
                    gpu.LayerNormBackward(d.Upload(dy), gx, gw, gm, gr, gdx, affine ? gdw : null, affine ? gdb : null, rows, cols);
                    Near(dx, d.Read(gdx, x.Length), what + " dx", 1e-3, 1e-4);
                    Near(dw, d.Read(gdw, cols), what + " dw", 1e-4, 1e-4);
                    Near(db, d.Read(gdb, cols), what + " db", 1e-4, 1e-4);
                }
        }
        finally { gpu.LayerNormKernel = saved; }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(9, 5, 4)]
    [InlineData(300, 33, 50)]
    public void EmbeddingAndBackward(int n, int dim, int rows)
    {
        var g = new Generator(19);
        var table = SmallInts(g, rows * dim);
        var idx = Enumerable.Range(0, n).Select(_ => g.NextInt(rows)).ToArray(); // repeats: the backward must add them all
        var dy = SmallInts(g, n * dim);
        var y = new float[n * dim];
        var dtable = SmallInts(g, rows * dim);
        var dtableGpu = (float[])dtable.Clone();
        fixed (float* pt = table, py = y, pdy = dy, pdt = dtable)
        fixed (int* pi = idx)
        {
            Ref.Embedding(pt, pi, py, n, dim, rows);
            Ref.EmbeddingBackward(pdy, pi, pdt, n, dim);
        }
        using var d = new DeviceArrays();
        float* gy = d.Filled(n * dim), gdt = d.Upload(dtableGpu);
        int* gi = d.Upload(idx);
        Gpu.Embedding(d.Upload(table), gi, gy, n, dim, rows);
        Near(y, d.Read(gy, n * dim), "Embedding", 0, 0);
        Gpu.EmbeddingBackward(d.Upload(dy), gi, gdt, n, dim);
        Near(dtable, d.Read(gdt, rows * dim), "EmbeddingBackward", 0, 0);
    }

    [Fact]
    public void EmbeddingReportsTheFirstBadIndex()
    {
        using var d = new DeviceArrays();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Gpu.Embedding(d.Upload(new float[4 * 2]), d.Upload([1, 3, 4, 7]), d.Filled(8), 4, 2, 4));
        Assert.Contains("Index 4 at position 2 is outside the table's 4 rows", error.Message);
    }

    [Fact]
    public void AdamW()
    {
        var g = new Generator(23);
        foreach (var n in Sizes)
        {
            var p = Normal(g, n);
            var grad = Normal(g, n);
            var m = Normal(g, n, 0.1f);
            var v = Normal(g, n, 0.1f).Select(Math.Abs).ToArray();
            var (pg, mg, vg) = ((float[])p.Clone(), (float[])m.Clone(), (float[])v.Clone());
            fixed (float* pp = p, pgr = grad, pm = m, pv = v)
                Ref.AdamW(pp, pgr, pm, pv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step: 3);
            using var d = new DeviceArrays();
            float* dp = d.Upload(pg), dm = d.Upload(mg), dv = d.Upload(vg);
            Gpu.AdamW(dp, d.Upload(grad), dm, dv, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step: 3);
            Near(p, d.Read(dp, n), $"AdamW p n={n}", 1e-5, 1e-6);
            Near(m, d.Read(dm, n), $"AdamW m n={n}", 1e-5, 1e-7);
            Near(v, d.Read(dv, n), $"AdamW v n={n}", 1e-5, 1e-7);
        }
    }
}
