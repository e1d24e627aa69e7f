using Nabla.Gpu;
using Nabla.Models;
using Nabla.Models.Gpt2;
using Nabla.Optim;

namespace Nabla.Tests.Devices;

/// <summary>
/// Training on the GPU kernels, run by ILGPU's CPU accelerator ("ilgpu-cpu", no GPU needed): the same steps as on the
/// CPU must give the same loss, parameters and generated logits, to the rounding of a different summation order.
/// </summary>
[Collection("Device memory")]
public class IlgpuParityTests
{
    private static Device Ilgpu
    {
        get
        {
            NablaGpu.Register();
            return Device.Get("ilgpu-cpu");
        }
    }

    [Fact]
    public void Gpt2TrainingStepsMatchTheCpu()
    {
        var config = new Gpt2Config { VocabSize = 53, MaxSequenceLength = 16, Channels = 32, Layers = 2, Heads = 4 };
        var tokens = Tensor.RandInt(new Generator(41), 0, 53, 2, 13);
        var (x, y) = (tokens.Narrow(1, 0, 12).Contiguous(), tokens.Narrow(1, 1, 12).Contiguous());
        var runs = new List<(float[] Losses, float[][] Parameters, float[] Logits)>();
        foreach (var device in new[] { Device.Cpu, Ilgpu })
        {
            var model = new Gpt2Model(config, new Generator(43));
            model.To(device);
            var (decay, noDecay) = model.WeightDecayGroups();
            var optimizer = new AdamW([new ParamGroup(decay), new ParamGroup(noDecay, weightDecay: 0f)], learningRate: 3e-3f, beta2: 0.95f, weightDecay: 0.1f);
            var losses = new float[2];
            for (int step = 0; step < losses.Length; step++)
            {
                using var scope = MemoryScope.Begin();
                optimizer.ZeroGrad();
                var loss = Gpt2Model.Loss(model.Forward(x.To(device)), y.To(device));
                loss.Backward();
                GradientClipping.ClipGradNorm(model.Parameters(), 1f);
                optimizer.Step();
                losses[step] = loss.Item();
            }
            float[] logits;
            using (Nabla.Autograd.GradMode.NoGrad())
                logits = Sampler.NextLogits(model, [5, 7, 11, 13], model.NewCache(1, 8));
            runs.Add((losses, model.Parameters().Select(p => p.ToArray()).ToArray(), logits));
        }
        var (cpu, gpu) = (runs[0], runs[1]);
        for (int i = 0; i < cpu.Losses.Length; i++) Assert.Equal(cpu.Losses[i], gpu.Losses[i], 1e-4);
        Assert.True(cpu.Losses[^1] < cpu.Losses[0]); // it trains
        for (int i = 0; i < cpu.Parameters.Length; i++)
            for (int j = 0; j < cpu.Parameters[i].Length; j++)
                Assert.True(Math.Abs(cpu.Parameters[i][j] - gpu.Parameters[i][j]) <= 1e-4, $"parameter {i}[{j}]: {cpu.Parameters[i][j]} on the CPU, {gpu.Parameters[i][j]} on ilgpu-cpu");
        for (int i = 0; i < cpu.Logits.Length; i++) Assert.Equal(cpu.Logits[i], gpu.Logits[i], 1e-3);
    }

    [Fact]
    public void MlpTrainingStepsMatchTheCpu()
    {
        var x = Tensor.Randn(new Generator(51), 32, 10);
        var y = Tensor.FromArray(Enumerable.Range(0, 32).Select(i => i % 4).ToArray());
        var runs = new List<float[][]>();
        foreach (var device in new[] { Device.Cpu, Ilgpu })
        {
            var model = new Mlp(10, [24, 16], 4, activation: "relu", generator: new Generator(53)).To(device);
            var optimizer = new AdamW(model.Parameters(), learningRate: 1e-2f);
            for (int step = 0; step < 3; step++)
            {
                using var scope = MemoryScope.Begin();
                optimizer.ZeroGrad();
                F.CrossEntropy(model.Forward(x.To(device)), y.To(device)).Backward();
                optimizer.Step();
            }
            runs.Add(model.Parameters().Select(p => p.ToArray()).ToArray());
        }
        for (int i = 0; i < runs[0].Length; i++)
            for (int j = 0; j < runs[0][i].Length; j++)
                Assert.True(Math.Abs(runs[0][i][j] - runs[1][i][j]) <= 1e-5, $"parameter {i}[{j}]: {runs[0][i][j]} on the CPU, {runs[1][i][j]} on ilgpu-cpu");
    }

    [Fact]
    public void DeviceMemoryIsReleasedAtTheEndOfTheStep()
    {
        var device = Ilgpu;
        var model = new Mlp(6, [16], 3, generator: new Generator(61)).To(device);
        var optimizer = new AdamW(model.Parameters());
        var (x, y) = (Tensor.Randn(new Generator(62), 10, 6), Tensor.FromArray(Enumerable.Range(0, 10).Select(i => i % 3).ToArray()));
        void Step()
        {
            using var scope = MemoryScope.Begin();
            optimizer.ZeroGrad();
            F.CrossEntropy(model.Forward(x.To(device)), y.To(device)).Backward();
            optimizer.Step();
            optimizer.ZeroGrad();
        }
        Step();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        device.Synchronize();
        long before = device.Runtime!.LiveBytes;
        Step();
        Assert.Equal(before, device.Runtime.LiveBytes);
    }
}
