using Xunit.Abstractions;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Kernels;

/// <summary>Tests that change process-wide kernel settings (the ISA cap, the backend) run alone, after the others.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelSettingsCollection
{
    public const string Name = "Kernel settings (serial)";
}

/// <summary>
/// Every <see cref="IKernelBackend"/> method of <see cref="CpuBackend"/> (except GEMM, tested in Gemm*.cs) against
/// <see cref="ReferenceBackend"/>, the spec, on random data and edge sizes (0, 1, sizes around the 8/16-lane
/// vector widths, sizes above the parallel grain), under each SIMD path the CPU has (AVX-512, AVX2, scalar; see TestIsas).
/// Integer-valued data is used where the result is then exact (copies, sums, max, embeddings), so any indexing
/// mistake shows; float data with a tolerance elsewhere (the reference accumulates in double).
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public sealed unsafe class CpuVsReferenceTests(ITestOutputHelper output)
{
    private readonly ITestOutputHelper _output = output;

    public static TheoryData<Isa> Isas => TestIsas.Theory();

    private static readonly IKernelBackend Cpu = CpuBackend.Instance, Ref = ReferenceBackend.Instance;
    private static readonly int[] Sizes = [0, 1, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 70001];

    private static float[] Normal(Generator g, int n, float scale = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)g.NextNormal() * scale;
        return a;
    }

    private static float[] Uniform(Generator g, int n, float lo, float hi)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = lo + (hi - lo) * g.NextFloat();
        return a;
    }

    private static float[] SmallInts(Generator g, int n, int k = 8)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = g.NextInt(2 * k + 1) - k;
        return a;
    }

    [Fact]
    public void ReportsWhichIsasThisMachineExercises()
    {
        // The kernel tests run only the paths this CPU has (TestIsas): say which ran here and which could not,
        // instead of failing because of the hardware.
        var missing = TestIsas.NotExercised.Select(m => $"{m.Isa} ({m.Reason})").ToArray();
        _output.WriteLine($"Kernel paths exercised on this CPU: {string.Join(", ", TestIsas.Available)}" +
            (missing.Length > 0 ? $"; not exercised: {string.Join(", ", missing)}" : ""));
        Assert.Contains(Isa.Scalar, TestIsas.Available);
        // Each listed path is really the one the kernels take under its cap, not a narrower one under its name.
        foreach (var isa in TestIsas.Available)
            using (CpuFeatures.Limit(isa))
                Assert.Equal(isa, CpuFeatures.Effective);
    }

    [Theory, MemberData(nameof(Isas))]
    public void Fill(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        foreach (var n in Sizes)
        {
            var a = new float[n + 1];
            var b = new float[n + 1];
            a[n] = b[n] = 42;
            fixed (float* pa = a, pb = b)
            {
                Cpu.Fill(pa, -1.25f, n);
                Ref.Fill(pb, -1.25f, n);
            }
            Close.Floats($"Fill n={n} ({isa})", b, a, rtol: 0, atol: 0);
        }
    }

    /// <summary>(shape, source strides, destination strides): contiguous, transposed, broadcast (stride 0),
    /// sliced with steps, and overlapping destinations (the backward of unfold) for accumulating copies.</summary>
    public static IEnumerable<(int[] Shape, int[] Src, int[] Dst, bool Accumulate)> CopyCases()
    {
        yield return ([0], [1], [1], false);
        yield return ([3, 0, 2], [0, 2, 1], [0, 2, 1], false);
        foreach (var n in Sizes) yield return ([n], [1], [1], false);
        yield return ([70001], [1], [1], true);
        yield return ([5, 7], [7, 1], [1, 5], false);        // transpose into the destination
        yield return ([7, 5], [1, 7], [5, 1], true);
        yield return ([4, 33], [0, 1], [33, 1], false);      // broadcast rows
        yield return ([33, 4], [1, 0], [4, 1], true);        // broadcast columns
        yield return ([3, 17], [34, 2], [17, 1], false);     // stepped source
        yield return ([5, 40], [81, 2], [40, 1], false);     // stepped rows of several vectors (a stride-2 subsampling)
        yield return ([6, 50], [1, 0], [50, 1], false);      // one value per row (a bias over positions)
        yield return ([2, 3, 4, 5], [60, 20, 5, 1], [60, 1, 15, 3], false);
        yield return ([8, 3], [3, 1], [1, 1], true);         // unfold(0, 3, 1) backward: windows overlap
        yield return ([4, 3, 3], [9, 3, 1], [2, 8, 1], true); // 2-D windows overlapping in both directions
        yield return ([300, 250], [250, 1], [1, 300], false); // above the parallel grain, transposed
        yield return ([300, 250], [1, 300], [250, 1], false);
        yield return ([1, 1, 1], [5, 5, 5], [1, 1, 1], false);
    }

    [Theory, MemberData(nameof(Isas))]
    public void Copy(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(1);
        foreach (var (shape, src, dst, acc) in CopyCases())
        {
            long Extent(int[] strides)
            {
                long e = 0;
                for (int d = 0; d < shape.Length; d++) e += (long)(shape[d] - 1) * strides[d];
                return ShapeMath.Count(shape) == 0 ? 0 : e + 1;
            }
            var s = SmallInts(g, (int)Extent(src) + 1);
            var init = SmallInts(g, (int)Extent(dst) + 1);
            var a = init.ToArray();
            var b = init.ToArray();
            fixed (float* ps = s, pa = a, pb = b)
            {
                Cpu.Copy(ps, src, pa, dst, shape, acc);
                Ref.Copy(ps, src, pb, dst, shape, acc);
            }
            Close.Floats($"Copy shape {ShapeMath.Format(shape)} src {ShapeMath.Format(src)} dst {ShapeMath.Format(dst)} accumulate={acc} ({isa})", b, a, rtol: 0, atol: 0);
        }
    }

    /// <summary>Inputs inside each function's domain, spread over where it bends (zeros included for the kinks).</summary>
    internal static float[] UnaryInput(Type function, float alpha, Generator g, int n) => function.Name switch
    {
        "Log" or "Sqrt" => Uniform(g, n, 1e-3f, 50f),
        "Exp" => Uniform(g, n, -20f, 20f),
        "PowScalar" when alpha != MathF.Round(alpha) => Uniform(g, n, 0.05f, 4f),
        "PowScalar" => Normal(g, n, 2f),
        "Sigmoid" or "Tanh" or "Silu" or "GeluExact" or "GeluTanh" => Normal(g, n, 5f),
        _ => WithZeros(Normal(g, n, 3f)),
    };

    private static float[] WithZeros(float[] a)
    {
        for (int i = 0; i < a.Length; i += 5) a[i] = 0;
        return a;
    }

    /// <summary>Every element-wise function of one tensor in the library (found by reflection, so a new one is tested
    /// without being listed), with the parameters worth trying.</summary>
    public static IEnumerable<(Type Function, float Alpha)> UnaryCases()
    {
        var functions = typeof(IUnaryFunction).Assembly.GetTypes()
            .Where(t => t.IsValueType && typeof(IUnaryFunction).IsAssignableFrom(t)).OrderBy(t => t.Name);
        foreach (var f in functions)
        {
            if (f == typeof(Nabla.Functions.PowScalar))
            {
                foreach (var p in new[] { 2f, 3f, 0.5f, -1f, 0f, 1f, 1.5f, -2.5f }) yield return (f, p);
            }
            else yield return (f, f.Name switch { "Scale" => -1.75f, "Shift" => 0.5f, "LeakyRelu" => 0.1f, _ => 0f });
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void UnaryAndItsDerivative(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(2);
        var check = typeof(CpuVsReferenceTests).GetMethod(nameof(UnaryAgainstReference), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        foreach (var (function, alpha) in UnaryCases())
            check.MakeGenericMethod(function).Invoke(null, [alpha, g, isa]);
    }

    private static void UnaryAgainstReference<F>(float alpha, Generator g, Isa isa) where F : struct, IUnaryFunction
    {
        foreach (var n in Sizes)
        {
            var x = UnaryInput(typeof(F), alpha, g, n);
            var dy = Normal(g, n);
            var yc = new float[n];
            var yr = new float[n];
            var dxc = new float[n];
            var dxr = new float[n];
            fixed (float* px = x, pyc = yc, pyr = yr, pdy = dy, pdxc = dxc, pdxr = dxr)
            {
                Cpu.Unary<F>(alpha, px, pyc, n);
                Ref.Unary<F>(alpha, px, pyr, n);
                // Both get the reference forward output, so the derivative is compared on its own.
                Cpu.UnaryBackward<F>(alpha, px, pyr, pdy, pdxc, n);
                Ref.UnaryBackward<F>(alpha, px, pyr, pdy, pdxr, n);
            }
            string what = $"{F.Name}(alpha={alpha}) n={n} ({isa})";
            // float32 vector math (exp, erfc fit, tanh) against the double-precision spec: a few ulps.
            Close.Floats($"Unary {what}", yr, yc, rtol: 4e-6, atol: 1e-7);
            Close.Floats($"UnaryBackward {what}", dxr, dxc, rtol: 1e-5, atol: 1e-6);
            // Called without y (allowed for derivatives that do not read it), the kernel reads zeros in its place: its
            // own loop for that case must give what an explicit y of zeros gives.
            var dxWithoutY = new float[n];
            var dxZeroY = new float[n];
            var zeros = new float[n];
            fixed (float* px = x, pdy = dy, pz = zeros, pdxNull = dxWithoutY, pdxZero = dxZeroY)
            {
                Cpu.UnaryBackward<F>(alpha, px, null, pdy, pdxNull, n);
                Cpu.UnaryBackward<F>(alpha, px, pz, pdy, pdxZero, n);
            }
            Assert.Equal(dxZeroY, dxWithoutY);
        }
    }

    /// <summary>(shape, a strides, b strides) including the broadcast patterns the CPU kernel special-cases.</summary>
    public static IEnumerable<(int[] Shape, int[] A, int[] B)> BinaryCases()
    {
        foreach (var n in Sizes) yield return ([n], [1], [1]);
        foreach (var n in new[] { 1, 7, 17, 100, 70001 })
        {
            yield return ([n], [1], [0]);
            yield return ([n], [0], [1]);
            yield return ([n], [0], [0]);
        }
        yield return ([3, 0], [0, 1], [1, 1]);
        yield return ([5, 17], [17, 1], [0, 1]);   // row broadcast
        yield return ([17, 5], [5, 1], [1, 0]);    // column broadcast
        yield return ([7, 9], [1, 7], [9, 1]);     // transposed a
        yield return ([6, 33], [66, 2], [1, 6]);   // stepped a, transposed b
        yield return ([2, 3, 4], [12, 4, 1], [0, 1, 0]);
        yield return ([400, 300], [300, 1], [0, 1]);  // above the parallel grain
        yield return ([400, 300], [1, 400], [300, 1]);
    }

    [Theory, MemberData(nameof(Isas))]
    public void Binary(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(3);
        foreach (var op in Enum.GetValues<BinaryOp>())
            foreach (var (shape, sa, sb) in BinaryCases())
            {
                // The threaded row split is the same generic code for every op: run the big shapes for a few.
                if (ShapeMath.Count(shape) > 10_000 && op is not (BinaryOp.Add or BinaryOp.Maximum or BinaryOp.Pow)) continue;
                int Extent(int[] s)
                {
                    long e = 0;
                    for (int d = 0; d < shape.Length; d++) e += (long)(shape[d] - 1) * s[d];
                    return ShapeMath.Count(shape) == 0 ? 1 : (int)e + 1;
                }
                int count = (int)ShapeMath.Count(shape);
                float[] a, b;
                if (op == BinaryOp.Pow) { a = Uniform(g, Extent(sa), 0.1f, 3f); b = Normal(g, Extent(sb)); }
                else if (op is BinaryOp.Maximum or BinaryOp.Minimum or BinaryOp.Greater or BinaryOp.Less or BinaryOp.Equal)
                {
                    // ties, and NaNs (which maximum/minimum propagate and comparisons reject)
                    a = SmallInts(g, Extent(sa), 2);
                    b = SmallInts(g, Extent(sb), 2);
                    if (a.Length > 3) a[3] = float.NaN;
                    if (b.Length > 5) b[5] = float.NaN;
                }
                else { a = Normal(g, Extent(sa)); b = Normal(g, Extent(sb)); }
                if (op == BinaryOp.Div) for (int i = 0; i < b.Length; i++) b[i] = b[i] >= 0 ? b[i] + 0.5f : b[i] - 0.5f;
                var yc = new float[count];
                var yr = new float[count];
                fixed (float* pa = a, pb = b, pyc = yc, pyr = yr)
                {
                    Cpu.Binary(op, pa, sa, pb, sb, pyc, shape);
                    Ref.Binary(op, pa, sa, pb, sb, pyr, shape);
                }
                Close.Floats($"Binary {op} shape {ShapeMath.Format(shape)} a {ShapeMath.Format(sa)} b {ShapeMath.Format(sb)} ({isa})", yr, yc,
                    rtol: op == BinaryOp.Pow ? 2e-6 : 0, atol: 0);
            }
    }

    public static IEnumerable<(int Outer, int R, int Inner)> ReductionShapes()
    {
        yield return (1, 0, 1);
        yield return (3, 0, 2);
        yield return (0, 5, 3);
        foreach (var n in Sizes) yield return (1, n, 1);
        yield return (200_000 / 70001 + 1, 70001, 1);
        yield return (5, 33, 1);
        yield return (2, 17, 7);
        yield return (1, 100, 33);
        yield return (1, 5000, 40);    // one outer row, columns split between threads
        yield return (4, 3, 1000);
        yield return (3000, 17, 1);    // many short rows
        yield return (7, 1, 9);
    }

    [Theory, MemberData(nameof(Isas))]
    public void SumIsExactOnIntegers(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(4);
        foreach (var (outer, r, inner) in ReductionShapes())
        {
            var x = SmallInts(g, outer * r * inner);
            var yc = new float[outer * inner];
            var yr = new float[outer * inner];
            fixed (float* px = x, pyc = yc, pyr = yr)
            {
                Cpu.Sum(px, pyc, outer, r, inner);
                Ref.Sum(px, pyr, outer, r, inner);
            }
            Close.Floats($"Sum ({outer}, {r}, {inner}) ({isa})", yr, yc, rtol: 0, atol: 0);
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void SumOfFloats(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(5);
        foreach (var (outer, r, inner) in ReductionShapes())
        {
            var x = Normal(g, outer * r * inner);
            var yc = new float[outer * inner];
            var yr = new float[outer * inner];
            fixed (float* px = x, pyc = yc, pyr = yr)
            {
                Cpu.Sum(px, pyc, outer, r, inner);
                Ref.Sum(px, pyr, outer, r, inner);
            }
            // float32 accumulation (in another order) vs double: error grows like √r·eps·|x|.
            Close.Floats($"Sum ({outer}, {r}, {inner}) ({isa})", yr, yc, rtol: 1e-5, atol: 2e-7 * Math.Sqrt(r) * 4);
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void MaxAndArgMax(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(6);
        foreach (var (outer, r, inner) in ReductionShapes())
        {
            if (r == 0) continue; // the op refuses an empty reduction before calling the kernel
            foreach (var withNaN in new[] { false, true })
            {
                var x = SmallInts(g, outer * r * inner, 3);
                for (int i = 0; i < x.Length; i += 11) x[i] = float.NegativeInfinity;
                if (withNaN) for (int i = 5; i < x.Length; i += 37) x[i] = float.NaN;
                var yc = new float[outer * inner];
                var yr = new float[outer * inner];
                var ic = new int[outer * inner];
                var ir = new int[outer * inner];
                fixed (float* px = x, pyc = yc, pyr = yr)
                fixed (int* pic = ic, pir = ir)
                {
                    Cpu.Max(px, pyc, pic, outer, r, inner);
                    Ref.Max(px, pyr, pir, outer, r, inner);
                }
                string what = $"({outer}, {r}, {inner}) NaNs={withNaN} ({isa})";
                Close.Floats($"Max values {what}", yr, yc, rtol: 0, atol: 0);
                Close.Ints($"Max indices {what}", ir, ic);
                fixed (float* px = x, pyc = yc) Cpu.Max(px, pyc, null, outer, r, inner); // argmax is optional
                Close.Floats($"Max values without argmax {what}", yr, yc, rtol: 0, atol: 0);
            }
        }
    }

    public static IEnumerable<(int Rows, int Cols)> RowShapes() =>
        [(0, 5), (1, 1), (3, 7), (2, 8), (2, 15), (2, 16), (2, 17), (5, 33), (4, 100), (2, 1000), (64, 1000), (1000, 3)];

    [Theory, MemberData(nameof(Isas))]
    public void SoftmaxForwardAndBackward(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(7);
        foreach (var (rows, cols) in RowShapes())
            foreach (var log in new[] { false, true })
            {
                var x = Normal(g, rows * cols, 4f);
                if (rows > 1 && cols > 2) { x[cols] = float.NegativeInfinity; x[cols + 2] = 80f; } // masked and large logits
                var dy = Normal(g, rows * cols);
                var yc = new float[x.Length];
                var yr = new float[x.Length];
                var dxc = new float[x.Length];
                var dxr = new float[x.Length];
                fixed (float* px = x, pyc = yc, pyr = yr, pdy = dy, pdxc = dxc, pdxr = dxr)
                {
                    Cpu.Softmax(px, pyc, rows, cols, log);
                    Ref.Softmax(px, pyr, rows, cols, log);
                    Cpu.SoftmaxBackward(pyr, pdy, pdxc, rows, cols, log);
                    Ref.SoftmaxBackward(pyr, pdy, pdxr, rows, cols, log);
                }
                string what = $"{(log ? "LogSoftmax" : "Softmax")} {rows}x{cols} ({isa})";
                // A float32 Σexp near 1 is only known to eps, so log-probabilities near 0 carry ~1e-7 absolute error.
                Close.Floats(what, yr, yc, rtol: 1e-5, atol: 2.5e-7);
                Close.Floats(what + " backward", dxr, dxc, rtol: 1e-5, atol: 2e-6);
            }
    }

    [Theory, MemberData(nameof(Isas))]
    public void CrossEntropyForwardAndBackward(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(8);
        foreach (var (rows, classes) in RowShapes())
            foreach (var smoothing in new[] { 0f, 0.1f })
                foreach (var ignore in new[] { -100, 1 })
                {
                    var z = Normal(g, rows * classes, 3f);
                    var t = new int[rows];
                    for (int i = 0; i < rows; i++) t[i] = i % 4 == 3 ? ignore : g.NextInt(classes);
                    var dl = Normal(g, rows);
                    var lc = new float[rows];
                    var lr = new float[rows];
                    var dc = new float[z.Length];
                    var dr = new float[z.Length];
                    fixed (float* pz = z, plc = lc, plr = lr, pdl = dl, pdc = dc, pdr = dr)
                    fixed (int* pt = t)
                    {
                        Cpu.CrossEntropy(pz, pt, plc, rows, classes, ignore, smoothing);
                        Ref.CrossEntropy(pz, pt, plr, rows, classes, ignore, smoothing);
                        Cpu.CrossEntropyBackward(pz, pt, pdl, pdc, rows, classes, ignore, smoothing);
                        Ref.CrossEntropyBackward(pz, pt, pdl, pdr, rows, classes, ignore, smoothing);
                    }
                    string what = $"CrossEntropy {rows}x{classes} smoothing={smoothing} ignore={ignore} ({isa})";
                    Close.Floats(what, lr, lc, rtol: 1e-5, atol: 2e-6);
                    // dloss·(p - 1) at the target: p near 1 in float32 leaves ~eps·|dloss| absolute error.
                    Close.Floats(what + " backward", dr, dc, rtol: 1e-5, atol: 5e-7);
                }
    }

    [Fact]
    public void CrossEntropyRejectsTargetsOutOfRangeLikeTheReference()
    {
        var z = new float[6];
        var t = new[] { 1, 3 };
        var loss = new float[2];
        foreach (var backend in new[] { Cpu, Ref })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            {
                fixed (float* pz = z, pl = loss) fixed (int* pt = t) backend.CrossEntropy(pz, pt, pl, 2, 3, -100, 0);
            });
            Assert.Contains("Target 3 at row 1", e.Message);
        }
    }

    [Theory, MemberData(nameof(Isas))]
    public void LayerNormForwardAndBackward(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(9);
        foreach (var (rows, cols) in RowShapes().Append((1000, 100)))
            foreach (var affine in new[] { true, false })
            {
                var x = Normal(g, rows * cols, 2f);
                for (int i = 0; i < x.Length; i++) x[i] += 3;
                float[]? w = affine ? Normal(g, cols) : null, b = affine ? Normal(g, cols) : null;
                var dy = Normal(g, rows * cols);
                var yc = new float[x.Length];
                var yr = new float[x.Length];
                var mc = new float[rows];
                var mr = new float[rows];
                var sc = new float[rows];
                var sr = new float[rows];
                var dxc = new float[x.Length];
                var dxr = new float[x.Length];
                // dw and db accumulate (+=): start them from the same nonzero values.
                var dwInit = Normal(g, cols);
                var dbInit = Normal(g, cols);
                float[] dwc = dwInit.ToArray(), dwr = dwInit.ToArray(), dbc = dbInit.ToArray(), dbr = dbInit.ToArray();
                fixed (float* px = x, pw = w, pb = b, pyc = yc, pyr = yr, pmc = mc, pmr = mr, psc = sc, psr = sr, pdy = dy,
                       pdxc = dxc, pdxr = dxr, pdwc = dwc, pdwr = dwr, pdbc = dbc, pdbr = dbr)
                {
                    Cpu.LayerNorm(px, pw, pb, pyc, pmc, psc, rows, cols, 1e-5f);
                    Ref.LayerNorm(px, pw, pb, pyr, pmr, psr, rows, cols, 1e-5f);
                    Cpu.LayerNormBackward(pdy, px, pw, pmr, psr, pdxc, affine ? pdwc : null, affine ? pdbc : null, rows, cols);
                    Ref.LayerNormBackward(pdy, px, pw, pmr, psr, pdxr, affine ? pdwr : null, affine ? pdbr : null, rows, cols);
                }
                string what = $"LayerNorm {rows}x{cols} affine={affine} ({isa})";
                Close.Floats(what + " y", yr, yc, rtol: 1e-5, atol: 2e-6);
                Close.Floats(what + " mean", mr, mc, rtol: 1e-5, atol: 1e-6);
                Close.Floats(what + " rstd", sr, sc, rtol: 1e-5, atol: 1e-6);
                Close.Floats(what + " dx", dxr, dxc, rtol: 1e-5, atol: 2e-6);
                // dw, db sum over all rows (1000 of them in the largest case)
                Close.Floats(what + " dw", dwr, dwc, rtol: 1e-5, atol: 1e-6 * Math.Sqrt(rows) * 4);
                Close.Floats(what + " db", dbr, dbc, rtol: 1e-5, atol: 1e-6 * Math.Sqrt(rows) * 4);
            }
    }

    [Theory, MemberData(nameof(Isas))]
    public void EmbeddingForwardAndBackward(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(10);
        foreach (var (n, dim, rows) in new[] { (0, 4, 3), (1, 1, 1), (12, 3, 5), (7, 17, 4), (100, 33, 10), (5000, 16, 7), (3, 2000, 50) })
        {
            var table = SmallInts(g, rows * dim);
            var idx = Enumerable.Range(0, n).Select(_ => g.NextInt(rows)).ToArray();
            var dy = SmallInts(g, n * dim);
            var yc = new float[n * dim];
            var yr = new float[n * dim];
            var init = SmallInts(g, rows * dim);
            float[] dc = init.ToArray(), dr = init.ToArray();
            fixed (float* pt = table, pyc = yc, pyr = yr, pdy = dy, pdc = dc, pdr = dr)
            fixed (int* pi = idx)
            {
                Cpu.Embedding(pt, pi, pyc, n, dim, rows);
                Ref.Embedding(pt, pi, pyr, n, dim, rows);
                Cpu.EmbeddingBackward(pdy, pi, pdc, n, dim);
                Ref.EmbeddingBackward(pdy, pi, pdr, n, dim);
            }
            string what = $"Embedding n={n} dim={dim} rows={rows} ({isa})";
            Close.Floats(what, yr, yc, rtol: 0, atol: 0);
            Close.Floats(what + " backward (repeated indices add up)", dr, dc, rtol: 0, atol: 0);
        }
    }

    [Fact]
    public void EmbeddingRejectsIndicesOutOfRangeLikeTheReference()
    {
        var table = new float[6];
        var y = new float[6];
        foreach (var backend in new[] { Cpu, Ref })
            foreach (var bad in new[] { 3, -1 })
            {
                var idx = new[] { 0, bad };
                var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
                {
                    fixed (float* pt = table, py = y) fixed (int* pi = idx) backend.Embedding(pt, pi, py, 2, 2, 3);
                });
                Assert.Contains($"Index {bad} at position 1", e.Message);
            }
    }

    [Theory, MemberData(nameof(Isas))]
    public void AdamW(Isa isa)
    {
        using var _ = CpuFeatures.Limit(isa);
        var g = new Generator(11);
        foreach (var n in Sizes)
            foreach (var (step, wd) in new[] { (1, 0f), (1, 0.1f), (10, 0.01f) })
            {
                var p0 = Normal(g, n);
                var grad = Normal(g, n);
                var m0 = Normal(g, n, 0.1f);
                var v0 = Uniform(g, n, 0f, 0.05f);
                if (step == 1) { Array.Clear(m0); Array.Clear(v0); }
                float[] pc = p0.ToArray(), pr = p0.ToArray(), mc = m0.ToArray(), mr = m0.ToArray(), vc = v0.ToArray(), vr = v0.ToArray();
                fixed (float* ppc = pc, ppr = pr, pg = grad, pmc = mc, pmr = mr, pvc = vc, pvr = vr)
                {
                    Cpu.AdamW(ppc, pg, pmc, pvc, n, 1e-2f, 0.9f, 0.999f, 1e-8f, wd, step);
                    Ref.AdamW(ppr, pg, pmr, pvr, n, 1e-2f, 0.9f, 0.999f, 1e-8f, wd, step);
                }
                string what = $"AdamW n={n} step={step} wd={wd} ({isa})";
                Close.Floats(what + " m", mr, mc, rtol: 1e-6, atol: 1e-8);
                Close.Floats(what + " v", vr, vc, rtol: 1e-6, atol: 1e-10);
                Close.Floats(what + " p", pr, pc, rtol: 1e-6, atol: 1e-7);
            }
    }
}
