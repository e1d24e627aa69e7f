using Nabla.Models;
using Nabla.Models.Gpt2;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Tests.Devices;

/// <summary>The tests that count a device's live bytes: they run alone, since the GPU tests share the ilgpu-cpu device.</summary>
[CollectionDefinition("Device memory", DisableParallelization = true)]
public sealed class DeviceMemoryCollection;

/// <summary>
/// Tensors and models on a device, on <see cref="SimulatedDevice"/>: copies, the mixed-device error, reading values,
/// and training steps that must match the same steps on the CPU. "sim-cpu" runs the CPU kernels behind device
/// addresses, so its results match the CPU's to rounding; "sim" runs the reference kernels.
/// </summary>
[Collection("Device memory")]
public class DeviceTests
{
    private static Device Sim => SimulatedDevice.Cpu;

    private static SimulatedDevice Runtime(Device device) => (SimulatedDevice)device.Runtime!;

    [Fact]
    public void RoundTripsAreExact()
    {
        var x = Tensor.Randn(new Generator(1), 3, 5);
        var onDevice = x.To(Sim);
        Assert.Same(Sim, onDevice.Device);
        Assert.Same(onDevice, onDevice.To(Sim));
        Assert.Equal(x.ToArray(), onDevice.To(Device.Cpu).ToArray());
        Assert.Same(Device.Cpu, onDevice.To(Device.Cpu).Device);

        // A strided view travels as its elements in row-major order.
        Assert.Equal(x.T.ToArray(), x.T.To(Sim).ToArray());
        var ids = Tensor.FromArray(new[] { 3, -1, 7, 0 }, 2, 2);
        Assert.Equal(ids.ToIntArray(), ids.To(Sim).To(Device.Cpu).ToIntArray());
        Assert.Equal(DType.Int32, ids.To(Sim).DType);

        // Between two devices, through the host.
        Assert.Equal(x.ToArray(), onDevice.To(SimulatedDevice.Reference).ToArray());
        Runtime(Sim).CheckAddressBlocks();
    }

    [Fact]
    public void MixingDevicesNamesTheOpAndBothDevices()
    {
        var a = Tensor.Ones(2, 2).To(Sim);
        var b = Tensor.Ones(2, 2);
        var error = Assert.Throws<InvalidOperationException>(() => a.Add(b));
        Assert.Equal("Add: expected all tensors to be on the same device, but found sim-cpu and cpu; move them with .To(device) first.", error.Message);
        error = Assert.Throws<InvalidOperationException>(() => b.MatMul(a));
        Assert.Contains("MatMul", error.Message);
        Assert.Contains("cpu and sim-cpu", error.Message);
        error = Assert.Throws<InvalidOperationException>(() => F.Linear(Tensor.Ones(1, 2).To(Sim), new Linear(2, 3).Weight));
        Assert.Contains("Linear", error.Message);
    }

    [Fact]
    public void ValuesAreReadThroughCopies()
    {
        var x = Tensor.FromArray([1.5f, -2f, 3f, 4f], 2, 2).To(Sim);
        Assert.Equal(-2f, x.Sum(1).Select(0, 0).Sub(1.5f).Item(), 6);
        Assert.Equal(3f, x.Select(0, 1).Select(0, 0).Item());
        Assert.Equal([1.5f, 3f, -2f, 4f], x.T.ToArray());
        Assert.Equal(Tensor.FromArray([1.5f, -2f, 3f, 4f], 2, 2).ToString(), x.ToString());
        Assert.Equal(7, Tensor.FromArray(new[] { 7 }).To(Sim).Reshape().Item());

        // Element access on the host would be one transfer per element: refused, naming the device.
        var error = Assert.Throws<InvalidOperationException>(() => x[0, 0]);
        Assert.Contains("on device sim-cpu", error.Message);
        Assert.Contains("To(Device.Cpu)", error.Message);
        Assert.Throws<InvalidOperationException>(() => x.AsSpan().Length);
    }

    [Fact]
    public void CreationOpsAndCopyFromWorkOnTheDevice()
    {
        var zeros = Tensor.Zeros([2, 3], Sim);
        Assert.Same(Sim, zeros.Device);
        Assert.Equal(new float[6], zeros.ToArray());
        Assert.Equal([1f, 1f], Tensor.Ones([2], Sim).ToArray());
        Assert.Equal([2.5f], Tensor.Full(2.5f, [1], Sim).ToArray());
        Assert.Same(Sim, Tensor.ZerosLike(zeros).Device);
        zeros.CopyFrom(Tensor.Arange(6).Reshape(2, 3)); // from the host: PyTorch's copy_ crosses devices
        Assert.Equal([0f, 1, 2, 3, 4, 5], zeros.ToArray());
        var init = Init.Normal(Tensor.Zeros([4, 4], Sim), 0, 1, new Generator(3));
        Assert.Equal(Init.Normal(Tensor.Zeros(4, 4), 0, 1, new Generator(3)).ToArray(), init.ToArray());
    }

    [Fact]
    public void TheSimulatorCatchesHostMemoryAtTheDevice()
    {
        var host = Tensor.Zeros(4);
        Assert.Throws<InvalidOperationException>(() => RunFill(Sim.Kernels, host));
    }

    private static unsafe void RunFill(Nabla.Kernels.IKernelBackend kernels, Tensor t) => kernels.Fill(t.Data, 1f, t.Count);

    [Theory]
    [InlineData("sim-cpu", 1e-6)]
    [InlineData("sim", 1e-4)]
    public void MlpTrainingStepMatchesTheCpu(string kind, double tolerance)
    {
        var device = kind == "sim" ? SimulatedDevice.Reference : SimulatedDevice.Cpu;
        var (x, y) = (Tensor.Randn(new Generator(5), 16, 6), Tensor.FromArray(Enumerable.Range(0, 16).Select(i => i % 3).ToArray()));
        var results = new List<(float Loss, float[][] Parameters)>();
        foreach (var target in new[] { Device.Cpu, device })
        {
            var model = new Mlp(6, [12, 8], 3, activation: "gelu", generator: new Generator(7));
            model.To(target);
            var optimizer = new AdamW(model.Parameters(), learningRate: 1e-2f);
            float loss = 0;
            for (int step = 0; step < 3; step++)
            {
                using var scope = MemoryScope.Begin();
                optimizer.ZeroGrad();
                var l = F.CrossEntropy(model.Forward(x.To(target)), y.To(target));
                l.Backward();
                GradientClipping.ClipGradNorm(model.Parameters(), 1f);
                optimizer.Step();
                loss = l.Item();
            }
            Assert.All(model.Parameters(), p => Assert.Same(target, p.Device));
            results.Add((loss, model.Parameters().Select(p => p.ToArray()).ToArray()));
        }
        AssertClose(results[0], results[1], tolerance);
        Runtime(device).CheckAddressBlocks();
    }

    [Theory]
    [InlineData("sim-cpu", 1e-5)]
    [InlineData("sim", 1e-4)]
    public void Gpt2TrainingStepMatchesTheCpu(string kind, double tolerance)
    {
        var device = kind == "sim" ? SimulatedDevice.Reference : SimulatedDevice.Cpu;
        var config = new Gpt2Config { VocabSize = 37, MaxSequenceLength = 16, Channels = 16, Layers = 2, Heads = 2 };
        var tokens = Tensor.RandInt(new Generator(11), 0, 37, 2, 9);
        var (x, y) = (tokens.Narrow(1, 0, 8).Contiguous(), tokens.Narrow(1, 1, 8).Contiguous());
        var results = new List<(float Loss, float[][] Parameters)>();
        foreach (var target in new[] { Device.Cpu, device })
        {
            var model = new Gpt2Model(config, new Generator(13));
            model.To(target);
            var (decay, noDecay) = model.WeightDecayGroups();
            var optimizer = new AdamW([new ParamGroup(decay), new ParamGroup(noDecay, weightDecay: 0f)], learningRate: 1e-2f, weightDecay: 0.1f);
            float loss = 0;
            for (int step = 0; step < 2; step++)
            {
                using var scope = MemoryScope.Begin();
                optimizer.ZeroGrad();
                var l = Gpt2Model.Loss(model.Forward(x.To(target)), y.To(target));
                l.Backward();
                optimizer.Step();
                loss = l.Item();
            }
            results.Add((loss, model.Parameters().Select(p => p.ToArray()).ToArray()));

            // Generation reads the logits back from the device.
            using (Nabla.Autograd.GradMode.NoGrad())
                Assert.Equal(37, Sampler.NextLogits(model, [1, 2, 3], model.NewCache(1, 8)).Length);
        }
        AssertClose(results[0], results[1], tolerance);
        Runtime(device).CheckAddressBlocks();
    }

    [Fact]
    public void ModuleToKeepsTheOptimizerWorking()
    {
        var x = Tensor.Randn(new Generator(21), 8, 4);
        var y = Tensor.Randn(new Generator(22), 8, 2);
        float[][] Train(bool move)
        {
            var model = new Mlp(4, [8], 2, generator: new Generator(23));
            var weight = model.Parameters().First();
            var optimizer = new AdamW(model.Parameters(), learningRate: 1e-2f);
            for (int step = 0; step < 4; step++)
            {
                // Steps 0-1 on the CPU, 2 on the device, 3 back on the CPU: the moments follow the parameters.
                var device = move && step == 2 ? Sim : Device.Cpu;
                model.To(device);
                Assert.Same(weight, model.Parameters().First()); // the same Parameter objects, moved
                using var scope = MemoryScope.Begin();
                optimizer.ZeroGrad();
                F.MseLoss(model.Forward(x.To(device)), y.To(device)).Backward();
                optimizer.Step();
            }
            return model.Parameters().Select(p => p.ToArray()).ToArray();
        }
        // Equal to rounding: the device runs the CPU kernels, the CPU the reference ones under NABLA_BACKEND=reference.
        AssertClose((0, Train(move: false)), (0, Train(move: true)), 1e-6);
    }

    [Fact]
    public void TiedWeightsStayTiedWhenMoved()
    {
        var model = new Gpt2Model(new Gpt2Config { VocabSize = 11, MaxSequenceLength = 8, Channels = 8, Layers = 1, Heads = 2 }, new Generator(2));
        var storages = model.Parameters().Select(p => p.Storage).Distinct().Count();
        model.To(Sim);
        Assert.Equal(storages, model.Parameters().Select(p => p.Storage).Distinct().Count());
        Assert.All(model.NamedBuffers(), b => Assert.Same(Sim, b.Buffer.Device));
    }

    [Fact]
    public void DeviceMemoryIsReleasedAtTheEndOfTheStep()
    {
        var runtime = Runtime(Sim);
        var model = new Mlp(6, [16], 3, generator: new Generator(31)).To(Sim);
        var optimizer = new AdamW(model.Parameters());
        var (x, y) = (Tensor.Randn(new Generator(32), 10, 6), Tensor.FromArray(Enumerable.Range(0, 10).Select(i => i % 3).ToArray()));
        void Step()
        {
            using var scope = MemoryScope.Begin();
            optimizer.ZeroGrad();
            var loss = F.CrossEntropy(model.Forward(x.To(Sim)), y.To(Sim));
            loss.Backward();
            optimizer.Step();
            optimizer.ZeroGrad();
            Assert.True(loss.Item() > 0);
        }
        Step(); // creates the optimizer's moments, which stay
        // Storages of earlier tests that only the collector frees are queued by the finalizer; free them now.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Sim.Synchronize();
        long before = runtime.LiveBytes;
        Step();
        Assert.Equal(before, runtime.LiveBytes);
    }

    private static void AssertClose((float Loss, float[][] Parameters) expected, (float Loss, float[][] Parameters) actual, double tolerance)
    {
        Assert.Equal(expected.Loss, actual.Loss, tolerance);
        Assert.Equal(expected.Parameters.Length, actual.Parameters.Length);
        for (int i = 0; i < expected.Parameters.Length; i++)
            for (int j = 0; j < expected.Parameters[i].Length; j++)
                Assert.True(Math.Abs(expected.Parameters[i][j] - actual.Parameters[i][j]) <= tolerance,
                    $"parameter {i}[{j}]: {expected.Parameters[i][j]} on the CPU, {actual.Parameters[i][j]} on the device");
    }
}
