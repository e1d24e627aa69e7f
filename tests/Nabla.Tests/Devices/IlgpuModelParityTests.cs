using Nabla.Autograd;
using Nabla.Gpu;
using Nabla.Models.Text;
using Nabla.Models.Vision;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Tests.Devices;

/// <summary>
/// Every vision and recurrent model, and every layer they are built of, trained for two steps on the GPU kernels run
/// by ILGPU's CPU accelerator ("ilgpu-cpu") against the same two steps on the CPU: the loss of both steps, the
/// gradients of the first and the parameters and buffers (batch-norm statistics and counters) after the second must
/// agree to the rounding of a different summation order. Shapes are tiny: the CPU accelerator runs every GPU thread.
/// The optimizers vary across the models so SGD (heavy-ball and Nesterov), RMSProp and AdamW each update on the device.
/// </summary>
[Collection("Device memory")]
public class IlgpuModelParityTests
{
    private static Device Ilgpu
    {
        get
        {
            NablaGpu.Register();
            return Device.Get("ilgpu-cpu");
        }
    }

    private static Tensor Labels(params int[] labels) => Tensor.FromArray(labels);

    [Fact]
    public void LeNetMatchesTheCpu() => Check(() => new LeNet5(numClasses: 3), Tensor.Randn(new Generator(1), 2, 1, 28, 28), Labels(0, 2),
        model => new SGD(model.Parameters(), learningRate: 0.05f, momentum: 0.9f));

    [Fact]
    public void VggWithBatchNormAndDropoutMatchesTheCpu() => Check(() => new Vgg(numClasses: 3, inChannels: 1, widths: [4, 8], imageSize: 8, hidden: 16, dropout: 0.5f),
        Tensor.Randn(new Generator(2), 3, 1, 8, 8), Labels(1, 0, 2),
        model => new SGD(model.Parameters(), learningRate: 0.05f, momentum: 0.9f, weightDecay: 1e-3f, nesterov: true));

    [Fact]
    public void ResNetWithTheImageNetStemMatchesTheCpu() =>
        Check(() => new ResNet(ResidualBlock.Basic, [1, 1], numClasses: 3, inChannels: 3, width: 4, imageNetStem: true),
            Tensor.Randn(new Generator(3), 2, 3, 16, 16), Labels(2, 1),
            model => new SGD(model.Parameters(), learningRate: 0.1f, momentum: 0.9f, weightDecay: 5e-4f));

    [Fact]
    public void VisionTransformerMatchesTheCpu() =>
        Check(() => new VisionTransformer(imageSize: 8, patchSize: 4, dim: 8, depth: 1, heads: 2, numClasses: 3, inChannels: 1, mlpHidden: 16),
            Tensor.Randn(new Generator(4), 2, 1, 8, 8), Labels(0, 1),
            model => new RMSProp(model.Parameters(), learningRate: 1e-2f, momentum: 0.9f, centered: true, weightDecay: 1e-3f));

    /// <summary>The layers the models above do not reach: grouped, depthwise, dilated and strided convolutions, group
    /// norm, channel dropout, average pooling, adaptive pooling and batch norm over features.</summary>
    [Fact]
    public void ConvolutionAndNormalizationLayersMatchTheCpu() =>
        Check(() => new Sequential(
                new Conv2d(2, 4, 3, padding: 1, groups: 2),                      // grouped
                new Conv2d(4, 8, 3, stride: 2, padding: 1, groups: 4, bias: false), // depthwise, multiplier 2
                new Conv2d(8, 8, 3, padding: 2, dilation: 2),                    // dilated
                new Conv2d(8, 8, 3, padding: 1),                                 // 3×3 (Winograd-sized on the CPU)
                new GroupNorm(2, 8), new ReLU(), new Dropout2d(0.5f),
                new AvgPool2d(2, padding: 1, countIncludePad: false), new AdaptiveAvgPool2d(2),
                new Flatten(), new BatchNorm1d(32), new Linear(32, 3)),
            Tensor.Randn(new Generator(5), 3, 2, 8, 8), Labels(2, 0, 1),
            model => new SGD(model.Parameters(), learningRate: 0.05f));

    [Fact]
    public void CharLstmMatchesTheCpu() =>
        Check(() => new CharLstm(vocabularySize: 11, embeddingDim: 6, hiddenSize: 8, numLayers: 2, dropout: 0.2f),
            Tensor.RandInt(new Generator(6), 0, 11, 2, 4), Tensor.RandInt(new Generator(7), 0, 11, 2, 4),
            model => new AdamW(model.Parameters(), learningRate: 1e-2f), CharLstm.Loss);

    /// <summary>Right-padded texts of different lengths: the packed-sequence path of the bidirectional LSTM.</summary>
    [Fact]
    public void BidirectionalLstmClassifierWithPaddingMatchesTheCpu() =>
        Check(() => new BiLstmClassifier(vocabularySize: 13, classes: 3, embeddingDim: 6, hiddenSize: 5, numLayers: 1, dropout: 0.2f),
            Tensor.FromArray(new[] { 3, 5, 7, 2, 8, 1, 0, 0, 6, 11, 12, 0 }, 3, 4), Labels(2, 0, 1),
            model => new AdamW(model.Parameters(), learningRate: 1e-2f));

    /// <summary>GRU, ReLU and tanh RNNs, an LSTM with a projection, and the three cells.</summary>
    [Fact]
    public void RecurrentLayersAndCellsMatchTheCpu() =>
        Check(() => new RecurrentStack(), Tensor.Randn(new Generator(8), 2, 3, 3), Labels(1, 0),
            model => new AdamW(model.Parameters(), learningRate: 1e-2f));

    /// <summary>DoRA and LoRA adapters (with dropout, so DoRA's dropout form runs too) on frozen linear layers, trained
    /// with LoRA+'s faster rate for B and the magnitudes: the row norms and the magnitude's gradient take the device's
    /// tensor path, the CPU its row-at-a-time loops.</summary>
    [Fact]
    public void DoraAndLoraAdaptersMatchTheCpu() =>
        Check(() =>
            {
                var model = new Sequential(new Linear(6, 8), new ReLU(), new Linear(8, 8), new ReLU(), new Linear(8, 3));
                Lora.Apply(model, ["0", "2"], rank: 2, alpha: 4, dropout: 0.2f, useDora: true);
                Lora.Apply(model, ["4"], rank: 2, alpha: 4);
                return model;
            },
            Tensor.Randn(new Generator(9), 4, 6), Labels(0, 2, 1, 1),
            model =>
            {
                var fast = Lora.Layers(model).SelectMany(l => new[] { l.Layer.LoraB.Weight, l.Layer.Magnitude }).OfType<Tensor>().ToHashSet();
                var trained = model.Parameters().Where(p => p.RequiresGrad).ToList();
                return new AdamW([new ParamGroup(trained.Where(p => !fast.Contains(p))), new ParamGroup(trained.Where(fast.Contains), learningRate: 0.16f)], learningRate: 1e-2f);
            });

    private sealed class RecurrentStack : Module
    {
        public RecurrentStack()
        {
            RegisterModule("gru", new GRU(3, 5, batchFirst: true, bidirectional: true));
            RegisterModule("relu_rnn", new RNN(10, 4, nonlinearity: RnnNonlinearity.Relu, batchFirst: true));
            RegisterModule("tanh_rnn", new RNN(4, 4, numLayers: 2, batchFirst: true));
            RegisterModule("lstm", new LSTM(4, 6, batchFirst: true, projSize: 3));
            RegisterModule("lstm_cell", new LSTMCell(3, 4));
            RegisterModule("gru_cell", new GRUCell(4, 4));
            RegisterModule("rnn_cell", new RNNCell(4, 3));
            RegisterModule("head", new Linear(3, 2));
        }

        public override Tensor Forward(Tensor x) // (B, T, 3)
        {
            var y = ForwardChild("gru", x);              // (B, T, 10)
            y = ForwardChild("relu_rnn", y);             // (B, T, 4)
            y = ForwardChild("tanh_rnn", y);             // (B, T, 4)
            y = ForwardChild("lstm", y);                 // (B, T, 3)
            var last = y.Select(1, y.Size(1) - 1);       // (B, 3)
            var (h, _) = ((LSTMCell)GetSubmodule("lstm_cell")).Forward(last, null, null); // (B, 4)
            h = ForwardChild("gru_cell", h);             // (B, 4)
            return ForwardChild("head", ForwardChild("rnn_cell", h)); // (B, 2)
        }
    }

    private static void Check(Func<Module> build, Tensor input, Tensor targets, Func<Module, Optimizer> optimizer,
        Func<Tensor, Tensor, Tensor>? loss = null, double tolerance = 1e-4)
    {
        loss ??= (logits, labels) => F.CrossEntropy(logits, labels);
        var runs = new List<Run>();
        foreach (var device in new[] { Device.Cpu, Ilgpu })
        {
            Generator.ManualSeed(11); // initial weights
            var model = build().To(device);
            var update = optimizer(model);
            var losses = new float[2];
            float[][] gradients = [];
            for (int step = 0; step < losses.Length; step++)
            {
                using var scope = MemoryScope.Begin();
                update.ZeroGrad();
                Generator.ManualSeed(100 + (ulong)step); // the same dropout masks on both devices
                var value = loss(model.Forward(input.To(device)), targets.To(device));
                value.Backward();
                if (step == 0) gradients = model.Parameters().Where(p => p.RequiresGrad).Select(p => p.Grad!.ToArray()).ToArray();
                update.Step();
                losses[step] = value.Item();
            }
            var state = model.StateDict().ToDictionary(kv => kv.Key,
                kv => kv.Value.DType == DType.Int32 ? kv.Value.ToIntArray().Select(i => (float)i).ToArray() : kv.Value.ToArray());
            runs.Add(new Run(losses, gradients, state));
        }
        var (cpu, gpu) = (runs[0], runs[1]);
        for (int i = 0; i < cpu.Losses.Length; i++)
            Assert.True(Close(cpu.Losses[i], gpu.Losses[i], tolerance), $"loss of step {i + 1}: {cpu.Losses[i]} on the CPU, {gpu.Losses[i]} on ilgpu-cpu");
        for (int i = 0; i < cpu.Gradients.Length; i++)
            for (int j = 0; j < cpu.Gradients[i].Length; j++)
                Assert.True(Close(cpu.Gradients[i][j], gpu.Gradients[i][j], tolerance),
                    $"gradient of parameter {i}[{j}]: {cpu.Gradients[i][j]} on the CPU, {gpu.Gradients[i][j]} on ilgpu-cpu");
        Assert.Equal(cpu.State.Keys, gpu.State.Keys);
        foreach (var (name, expected) in cpu.State)
            for (int j = 0; j < expected.Length; j++)
                Assert.True(Close(expected[j], gpu.State[name][j], tolerance), $"{name}[{j}] after two steps: {expected[j]} on the CPU, {gpu.State[name][j]} on ilgpu-cpu");
    }

    private static bool Close(float expected, float actual, double tolerance) =>
        Math.Abs(expected - actual) <= tolerance * (1 + Math.Abs(expected));

    private sealed record Run(float[] Losses, float[][] Gradients, Dictionary<string, float[]> State);
}
