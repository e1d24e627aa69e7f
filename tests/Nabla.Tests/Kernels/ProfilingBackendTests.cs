using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.NN;
using Nabla.Tests.Ops;

namespace Nabla.Tests.Kernels;

/// <summary>The profiler's timed backend is generated from <see cref="IKernelBackend"/>: every kernel goes through it
/// to the inner backend, is tallied under its name, and computes what the inner backend computes.</summary>
[Collection(KernelSettingsCollection.Name)]
public sealed class ProfilingBackendTests
{
    [Fact]
    public void EveryKernelIsForwardedAndTallied()
    {
        var profiler = new ProfilingBackend(CpuBackend.Instance);
        foreach (var call in new KernelAllocationTests.Operands(profiler.Timed).Cases.Values) call();
        var report = profiler.Report();
        foreach (var kernel in KernelAllocationTests.KernelNames())
            Assert.Contains(kernel, report);
        // Generic kernels by their function, enum-taking ones by the value.
        foreach (var function in KernelAllocationTests.UnaryFunctions())
        {
            Assert.Contains($"Unary {function.Name} ", report);
            Assert.Contains($"UnaryBackward {function.Name} ", report);
        }
        Assert.Contains("Binary Maximum ", report);
        Assert.Equal(CpuBackend.Instance.Name, profiler.Timed.Name);
    }

    [Fact]
    public void AGivenClockIsTheOneRead()
    {
        // A clock that advances one second per reading: every call is tallied as exactly one second.
        long ticks = 0;
        var profiler = new ProfilingBackend(CpuBackend.Instance, () => ticks += System.Diagnostics.Stopwatch.Frequency);
        var x = new float[4];
        var y = new float[4];
        unsafe
        {
            fixed (float* px = x, py = y)
                for (int call = 0; call < 3; call++) profiler.Timed.Unary<Functions.Relu>(0f, px, py, x.Length);
        }
        Assert.Matches(@"Unary Relu +3000\.0 ms +100\.0% +3 calls", profiler.Report());
    }

    [Fact]
    public void ATrainingStepUnderTheProfilerComputesWhatItComputesWithout()
    {
        float[] Step()
        {
            var model = new Sequential(new Linear(5, 8, generator: new Generator(1)), new Softplus(), new Linear(8, 3, generator: new Generator(2)));
            var x = Tensor.Randn(new Generator(3), 4, 5);
            F.CrossEntropy(model.Forward(x), Tensor.FromArray([0, 2, 1, 2])).Backward();
            return model.Parameters().SelectMany(p => p.Grad!.ToArray()).ToArray();
        }
        var plain = Step();
        var profiler = new ProfilingBackend(Backend.Current);
        float[] profiled;
        using (Backend.Use(profiler.Timed)) profiled = Step();
        Assert.Equal(plain, profiled);
        Assert.Contains("Unary Softplus ", profiler.Report());
        Assert.Contains("Gemm", profiler.Report());
    }
}
