using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Globalization;
using Nabla.Autograd;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;
using Nabla.Models.Vision;
using Nabla.NN;
using Nabla.Optim;

namespace Nabla.Bench;

/// <summary>
/// Attention and convolution steps (forward + backward through autograd) timed against PyTorch 1.13 in the same run:
/// <list type="bullet">
/// <item>causal attention, B=4, H=12, D=64, T = 64, 256, 1024: Nabla's tiled kernel, Nabla's reference kernel (T=64
/// only; larger T extrapolated by T², and marked so), and PyTorch's softmax(q·kᵀ/√d + mask)·v with autograd;</item>
/// <item>LeNet's first convolution (N=64, 1→6 channels, 28×28, 5×5) and a ResNet 3×3 convolution (N=8, 64→64, 56×56,
/// padding 1), both with bias, gradients for input, weight and bias; PyTorch with its default oneDNN convolution
/// and with oneDNN off (its own im2col + BLAS path, far faster for LeNet's single input channel).</item>
/// </list>
/// Rounds interleave the contenders (each round times every case for each of them in turn) so machine noise hits
/// all of them alike; the report gives medians over all timed steps and the ratio to the faster PyTorch configuration. PyTorch runs in a peer process
/// (bench/kernels_peer.py under /usr/bin/python3) with the same thread count, stopped (SIGSTOP) whenever it is not
/// its turn, so that its spinning idle threads do not slow Nabla's turns down.
/// GFLOP/s count the useful work: attention 12·B·H·D per visible (query, key) pair (4 forward for q·kᵀ and P·v, 8
/// backward for dV, dP, dK, dQ; the recomputation of P is not counted); a convolution 3 × its forward
/// 2·N·O·OH·OW·C·kh·kw (forward, dX, dW).
/// Usage: <c>kernels [--threads N] [--rounds R] [--no-torch] [--only TEXT] [--peer path/to/kernels_peer.py]</c>.
/// <para>
/// <c>conv</c> runs the same harness over the convolution layers of LeNet-5 (on 28×28 Fashion-MNIST, batch 64),
/// ResNet-20 (28×28, batch 64) and ResNet-18 (224×224, batch 8), each as forward only (no gradients recorded, on
/// either side) and as forward + backward.
/// </para>
/// </summary>
public static class KernelBench
{
    private abstract record Case(string Name, double Flops)
    {
        /// <summary>What the rate column counts: useful GFLOP/s for kernels, images/s for training steps.</summary>
        public virtual string Unit => "GFLOP/s";
        public virtual double Rate(double ms) => Flops / ms / 1e6;
    }

    /// <summary>A training step (forward, cross-entropy, backward, SGD with momentum) of a vision model on a batch of
    /// random 1×28×28 images, in train mode (batch statistics): "lenet" (LeNet-5) or "resnet20" (ResNet-20, width 16).</summary>
    private sealed record TrainCase(string Model, int Batch) : Case($"{Model} training step, batch {Batch}, 28×28", double.NaN)
    {
        public override string Unit => "images/s";
        public override double Rate(double ms) => Batch / ms * 1e3;
    }

    private sealed record AttentionCase(int B, int H, int T, int D)
        : Case($"attention B={B} H={H} T={T} D={D} causal", 12.0 * B * H * D * T * (T + 1) / 2);

    private sealed record ConvCase(string Label, int N, int C, int H, int W, int O, int K, int Stride, int Padding, bool Backward = true)
        : Case($"{Label} N={N} {C}→{O} {H}×{W} {K}×{K} s{Stride} p{Padding}{(Backward ? "" : " fwd")}",
            (Backward ? 3.0 : 1.0) * 2 * N * O * ((H + 2 * Padding - K) / Stride + 1) * ((W + 2 * Padding - K) / Stride + 1) * C * K * K);

    /// <summary>The convolutions of LeNet-5, ResNet-20 (both on 28×28 Fashion-MNIST) and ResNet-18 (224×224 ImageNet),
    /// one row per distinct layer shape, forward only and forward + backward.</summary>
    private static Case[] ConvolutionLayers() =>
    [
        .. Layer("LeNet conv1", 64, 1, 28, 28, 6, 5, 1, 2),
        .. Layer("LeNet conv2", 64, 6, 14, 14, 16, 5, 1, 0),
        .. Layer("ResNet-20 stem", 64, 1, 28, 28, 16, 3, 1, 1),
        .. Layer("ResNet-20 stage 1", 64, 16, 28, 28, 16, 3, 1, 1),
        .. Layer("ResNet-20 stage 2 down", 64, 16, 28, 28, 32, 3, 2, 1),
        .. Layer("ResNet-20 stage 2", 64, 32, 14, 14, 32, 3, 1, 1),
        .. Layer("ResNet-20 stage 3", 64, 64, 7, 7, 64, 3, 1, 1),
        .. Layer("ResNet-18 stem", 8, 3, 224, 224, 64, 7, 2, 3),
        .. Layer("ResNet-18 layer1", 8, 64, 56, 56, 64, 3, 1, 1),
        .. Layer("ResNet-18 layer2 down", 8, 64, 56, 56, 128, 3, 2, 1),
        .. Layer("ResNet-18 layer2", 8, 128, 28, 28, 128, 3, 1, 1),
        .. Layer("ResNet-18 layer3", 8, 256, 14, 14, 256, 3, 1, 1),
        .. Layer("ResNet-18 layer4", 8, 512, 7, 7, 512, 3, 1, 1),
        .. Layer("ResNet-18 shortcut 1×1", 8, 64, 56, 56, 128, 1, 2, 0),
    ];

    /// <summary>A layer as two cases, forward only and forward + backward (built apart: a record's <c>with</c> would
    /// keep the name and FLOP count computed for the other).</summary>
    private static ConvCase[] Layer(string label, int n, int c, int h, int w, int o, int k, int stride, int padding) =>
        [new(label, n, c, h, w, o, k, stride, padding, Backward: false), new(label, n, c, h, w, o, k, stride, padding)];

    /// <summary>One contender on one case: a step to time, or null where it does not run.</summary>
    private sealed record Contender(string Name, Func<Case, Action?> Prepare);

    /// <summary>Pause before each contender's turn, longer than idle worker threads spin before sleeping.</summary>
    private const int SettleMs = 300;

    private sealed class Samples
    {
        public readonly List<double> Ms = new();
        public double Median => Ms.Count == 0 ? double.NaN : Ms.Order().ElementAt(Ms.Count / 2);
    }

    /// <summary><paramref name="suite"/>: "kernels" (attention and two convolutions) or "conv" (<see cref="ConvolutionLayers"/>).</summary>
    public static int Run(string[] args, string suite = "kernels")
    {
        int threads = int.Parse(BenchArgs.Value(args, "--threads") ?? "2", CultureInfo.InvariantCulture);
        int rounds = int.Parse(BenchArgs.Value(args, "--rounds") ?? "7", CultureInfo.InvariantCulture);
        bool torch = !args.Contains("--no-torch");
        // --cpu-time (with --threads 1): time every contender by its thread's CPU time (PyTorch's too: with one thread
        // its kernels run on the calling thread), which a busy machine inflates far less than the wall clock.
        bool cpuTime = args.Contains("--cpu-time") && threads == 1;
        WorkerPool.Threads = threads;

        Case[] cases = suite == "conv" ? ConvolutionLayers() : suite == "vision" ? [new TrainCase("lenet", 64), new TrainCase("resnet20", 64)] :
        [
            new AttentionCase(4, 12, 64, 64),
            new AttentionCase(4, 12, 256, 64),
            new AttentionCase(4, 12, 1024, 64),
            new ConvCase("LeNet conv1", 64, 1, 28, 28, 6, 5, 1, 0),
            new ConvCase("ResNet conv3x3", 8, 64, 56, 56, 64, 3, 1, 1),
        ];
        // --only TEXT keeps the cases whose name contains it (e.g. "ResNet-18 layer1").
        if (BenchArgs.Value(args, "--only") is { } only) cases = cases.Where(c => c.Name.Contains(only, StringComparison.OrdinalIgnoreCase)).ToArray();
        if (args.Contains("--profile")) return Profile(cases, rounds);
        using var peer = torch ? Peer.TryStart(BenchArgs.Value(args, "--peer"), threads) : null;
        if (cpuTime) peer?.UseCpuClock();
        var contenders = new List<Contender>
        {
            new("nabla", c => OurStep(c, CpuBackend.Instance)),
            new("nabla reference", c => c is AttentionCase { T: 64 } ? OurStep(c, ReferenceBackend.Instance) : null),
            new("nabla, im2col + GEMM", Im2ColStep),
            // The direct path against what each case would take without it, and where Winograd is chosen, against Winograd.
            new("nabla, without direct", c => PathStep(c, ConvolutionPath.WithoutDirect, whereAutoIsDirect: true)),
            new("nabla, direct", c => PathStep(c, ConvolutionPath.Direct, whereAutoIsDirect: false)),
        };
        if (peer != null)
        {
            contenders.Add(new("pytorch", c => peer.Step(c, "pytorch")));
            contenders.Add(new("pytorch, oneDNN off", c => c is ConvCase or TrainCase ? peer.Step(c, "pytorch, oneDNN off") : null));
        }

        Console.WriteLine($"Kernel benchmark ({suite}): {threads} thread(s), {rounds} interleaved rounds{(cpuTime ? ", Nabla timed by thread CPU time" : "")}");
        Console.WriteLine($"machine: {MachineInfo.Line}; load average at start {MachineLoad.LoadAverage}");
        Console.WriteLine($"peer: {peer?.Description ?? "none"}");

        var steps = new Dictionary<(Case, Contender), (Action Step, int Reps)>();
        foreach (var c in cases)
            foreach (var contender in contenders)
                if (contender.Prepare(c) is { } step)
                {
                    // Warm up, then choose how many steps make a round of about 0.2 s.
                    WarmUp(step);
                    var watch = Stopwatch.StartNew();
                    step();
                    steps[(c, contender)] = (step, (int)Math.Clamp(200 / Math.Max(watch.Elapsed.TotalMilliseconds, 1e-3), 1, 50));
                }

        var samples = steps.Keys.ToDictionary(key => key, _ => new Samples());
        for (int round = 0; round < rounds; round++)
            foreach (var c in cases)
                foreach (var contender in contenders)
                {
                    if (!steps.TryGetValue((c, contender), out var entry)) continue;
                    // Idle threads of the previous contender spin for a while before they sleep: on two cores they
                    // would steal time from this one. Ours settle in the pause; PyTorch's OpenMP threads spin on far
                    // longer, so its process is stopped outside its turns (Peer).
                    Thread.Sleep(SettleMs);
                    if (contender.Name.StartsWith("pytorch")) { samples[(c, contender)].Ms.AddRange(peer!.Time(c, entry.Reps, contender.Name)); continue; }
                    for (int r = 0; r < entry.Reps; r++)
                    {
                        if (cpuTime)
                        {
                            samples[(c, contender)].Ms.Add(1e3 * CpuClock.ThreadSeconds(entry.Step));
                            continue;
                        }
                        var watch = Stopwatch.StartNew();
                        entry.Step();
                        samples[(c, contender)].Ms.Add(watch.Elapsed.TotalMilliseconds);
                    }
                }

        string loadAfter = MachineLoad.LoadAverage;
        double peak = FmaPeak.Measure(threads);
        var records = new List<Record>();
        foreach (var c in cases)
        {
            // The baseline is PyTorch's faster configuration for the case.
            double torchMs = samples.Where(kv => kv.Key.Item1 == c && kv.Key.Item2.Name.StartsWith("pytorch"))
                .Select(kv => kv.Value.Median).DefaultIfEmpty(double.NaN).Min();
            foreach (var contender in contenders)
            {
                double ms;
                string name = contender.Name;
                if (samples.TryGetValue((c, contender), out var s)) ms = s.Median;
                else if (contender.Name == "nabla reference" && c is AttentionCase a)
                {
                    // The reference is O(T²) like the others but far too slow to time at long T: scale the T=64 time.
                    var measured = samples.First(kv => kv.Key.Item1 is AttentionCase { T: 64 } && kv.Key.Item2 == contender);
                    ms = measured.Value.Median * ((double)a.T * (a.T + 1)) / (64.0 * 65);
                    name += " (extrapolated)";
                }
                else continue;
                string ratio = contender.Name.StartsWith("pytorch") || double.IsNaN(torchMs) ? "" : $"{torchMs / ms:F2}× faster";
                if (ratio.Length > 0 && torchMs < ms) ratio = $"{ms / torchMs:F2}× slower";
                double gflops = c.Rate(ms);
                records.Add(new Record(c switch { AttentionCase => "attention fwd+bwd", TrainCase => "training step", ConvCase { Backward: false } => "conv2d fwd", _ => "conv2d fwd+bwd" }, c.Name, name, threads,
                    Math.Round(ms, 3), Math.Round(gflops, 1), c is TrainCase ? null : Math.Round(100 * gflops / peak, 1), ratio));
            }
        }
        if (args.Contains("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(records, new JsonSerializerOptions
            {
                WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            }));
            return 0;
        }
        Console.WriteLine($"load average at end {loadAfter}; measured FMA peak on {threads} thread(s): {peak:F1} GFLOP/s ({FmaPeak.Method})");
        Console.WriteLine();
        Console.WriteLine($"| case | contender | median ms | {cases.FirstOrDefault()?.Unit ?? "GFLOP/s"} | % of peak | vs best PyTorch |");
        Console.WriteLine("|---|---|---:|---:|---:|---|");
        foreach (var r in records)
            Console.WriteLine($"| {r.Shape} | {r.Impl} | {r.MedianMs:F3} | {r.Gflops:F1} | {r.PercentOfPeak:F1} | {r.VsPytorch} |");
        return 0;
    }

    /// <summary>One row of the results (also the --json record). Gflops holds the case's rate (images/s for training
    /// steps, which have no share of the FMA peak).</summary>
    private sealed record Record(string Kernel, string Shape, string Impl, int Threads, double MedianMs, double Gflops, double? PercentOfPeak, string VsPytorch);

    /// <summary>A forward + backward step of the case through Nabla's ops on <paramref name="backend"/>.</summary>
    private static Action OurStep(Case c, IKernelBackend backend)
    {
        var g = new Generator(0);
        switch (c)
        {
            case AttentionCase a:
            {
                var (q, k, v) = (Tensor.Randn(g, a.B, a.H, a.T, a.D).RequiresGrad_(), Tensor.Randn(g, a.B, a.H, a.T, a.D).RequiresGrad_(),
                    Tensor.Randn(g, a.B, a.H, a.T, a.D).RequiresGrad_());
                var grad = Tensor.Randn(g, a.B, a.H, a.T, a.D);
                return () =>
                {
                    using var _ = Backend.Use(backend);
                    q.Grad = k.Grad = v.Grad = null;
                    F.ScaledDotProductAttention(q, k, v, causal: true).Backward(grad);
                };
            }
            case ConvCase conv:
            {
                var x = Tensor.Randn(g, conv.N, conv.C, conv.H, conv.W).RequiresGrad_();
                var w = Tensor.Randn(g, conv.O, conv.C, conv.K, conv.K).RequiresGrad_();
                var b = Tensor.Randn(g, conv.O).RequiresGrad_();
                int outSize(int size) => (size + 2 * conv.Padding - conv.K) / conv.Stride + 1;
                var grad = Tensor.Randn(g, conv.N, conv.O, outSize(conv.H), outSize(conv.W));
                if (!conv.Backward)
                    return () =>
                    {
                        using var _ = Backend.Use(backend);
                        using var noGrad = GradMode.NoGrad();
                        using var step = MemoryScope.Begin();
                        F.Conv2d(x, w, b, conv.Stride, conv.Padding);
                    };
                return () =>
                {
                    using var _ = Backend.Use(backend);
                    // As in a training loop: the step's working memory goes back to the pool when it ends.
                    using var step = MemoryScope.Begin();
                    x.Grad = w.Grad = b.Grad = null;
                    F.Conv2d(x, w, b, conv.Stride, conv.Padding).Backward(grad);
                };
            }
            case TrainCase train:
            {
                Module model = train.Model == "lenet" ? new LeNet5(generator: g) : ResNet.ResNet20();
                var optimizer = new SGD(model.Parameters(), 0.01f, momentum: 0.9f);
                var images = Tensor.Randn(g, train.Batch, 1, 28, 28);
                var random = new Random(0);
                var labels = Tensor.FromArray(Enumerable.Range(0, train.Batch).Select(_ => random.Next(10)).ToArray(), train.Batch);
                return () =>
                {
                    using var _ = Backend.Use(backend);
                    using var step = MemoryScope.Begin();
                    optimizer.ZeroGrad();
                    F.CrossEntropy(model.Forward(images), labels).Backward();
                    optimizer.Step();
                };
            }
            default: throw new ArgumentException($"Unknown case {c}.");
        }
    }

    /// <summary><see cref="OurStep"/> with the convolution path forced, on the convolutions the direct path can run where
    /// the automatic choice is (<paramref name="whereAutoIsDirect"/>) or is not the direct path; null elsewhere.</summary>
    private static Action? PathStep(Case c, ConvolutionPath path, bool whereAutoIsDirect)
    {
        if (c is TrainCase && whereAutoIsDirect) return Forced(OurStep(c, CpuBackend.Instance));
        if (c is not ConvCase conv) return null;
        var geometry = new Conv2dGeometry(conv.N, conv.C, conv.H, conv.W, conv.O, conv.K, conv.K, conv.Stride, conv.Stride,
            conv.Padding, conv.Padding, 1, 1, 1);
        if (!geometry.SuitsDirect || F.UsesDirect(geometry) != whereAutoIsDirect) return null;
        return Forced(OurStep(c, CpuBackend.Instance));

        Action Forced(Action step) => () =>
        {
            using var _ = F.ForceConvolutionPath(path);
            step();
        };
    }

    /// <summary>The im2col + GEMM path the Winograd path replaced, on the cases that now take Winograd (the previous
    /// version, timed in the same rounds). It calls the path's kernels directly, so it does without autograd's
    /// bookkeeping and the bias gradient (a sum over dy): a little less work than the "nabla" row.</summary>
    private static Action? Im2ColStep(Case c)
    {
        if (c is not ConvCase conv) return null;
        var geometry = new Conv2dGeometry(conv.N, conv.C, conv.H, conv.W, conv.O, conv.K, conv.K, conv.Stride, conv.Stride,
            conv.Padding, conv.Padding, 1, 1, 1);
        if (!F.UsesWinograd(geometry)) return null;
        var g = new Generator(0);
        var x = Tensor.Randn(g, conv.N, conv.C, conv.H, conv.W);
        var w = Tensor.Randn(g, conv.O, conv.C, conv.K, conv.K);
        var b = Tensor.Randn(g, conv.O);
        var dy = Tensor.Randn(g, conv.N, conv.O, geometry.OutHeight, geometry.OutWidth);
        return () =>
        {
            using var noGrad = GradMode.NoGrad();
            using var step = MemoryScope.Begin();
            F.ConvolutionForward(geometry, x, w, b, Tensor.Empty([conv.N, conv.O, geometry.OutHeight, geometry.OutWidth]));
            if (conv.Backward) F.ConvolutionBackward(geometry, x, w, dy, Tensor.Empty(x.Shape.ToArray()), Tensor.Empty(w.Shape.ToArray()));
        };
    }

    /// <summary>Seconds each case runs before it is timed.</summary>
    private const double WarmUpSeconds = 2;

    /// <summary>
    /// Runs <paramref name="step"/> for <see cref="WarmUpSeconds"/> (and at least 3 times), so that the steady state is
    /// timed. .NET compiles a method first without optimisation and recompiles it optimised only after 30 calls and
    /// once no new method has been compiled for 100 ms; a training step calls hundreds of methods, so its first
    /// tens of runs time unoptimised code (a ResNet-20 step's kernels took 1.7× longer over its first 10 steps than
    /// over 60, 2-thread profile, stop 20). PyTorch's kernels are compiled ahead of time; its peer warms each request
    /// up itself, and this only repeats that.
    /// </summary>
    private static void WarmUp(Action step)
    {
        var watch = Stopwatch.StartNew();
        for (int n = 0; n < 3 || watch.Elapsed.TotalSeconds < WarmUpSeconds; n++) step();
    }

    /// <summary>
    /// <c>--profile</c>: where each case's step goes, kernel by kernel (<see cref="ProfilingBackend"/>), over
    /// <paramref name="rounds"/> steps after a warm-up, with the step's CPU time (the calling thread's; run with
    /// <c>--threads 1</c> so that it is all the work) and the share of it outside the kernels (autograd, allocation,
    /// views). With one thread, kernels are timed by CPU time too; with more, by the wall clock.
    /// </summary>
    private static int Profile(Case[] cases, int rounds)
    {
        Console.WriteLine($"Profile: {WorkerPool.Threads} thread(s), {rounds} steps per case; load average at start {MachineLoad.LoadAverage}");
        foreach (var c in cases)
        {
            var profiler = new ProfilingBackend(CpuBackend.Instance, WorkerPool.Threads == 1 ? CpuClock.ThreadTicks : null);
            var cpuMs = new List<double>();
            var timedStep = OurStep(c, profiler.Timed);
            WarmUp(timedStep);
            profiler.Reset();
            for (int r = 0; r < rounds; r++) cpuMs.Add(1e3 * CpuClock.ThreadSeconds(timedStep));
            Console.WriteLine($"\n{c.Name}: CPU time per step, median of {rounds}: {cpuMs.Order().ElementAt(cpuMs.Count / 2):F2} ms " +
                $"(sum over the steps {cpuMs.Sum():F1} ms; kernels below are totals over the same steps)");
            Console.Write(profiler.Report());
        }
        Console.WriteLine($"load average at end {MachineLoad.LoadAverage}");
        return 0;
    }

    /// <summary>The PyTorch peer process (bench/kernels_peer.py), one request line and one answer line at a time.</summary>
    private sealed class Peer(PythonPeer peer) : IDisposable
    {
        public string Description { get; } = peer.Started is [var torchThreads, var blasThreads, var version, var onednn, ..]
            ? $"PyTorch {version}, {torchThreads} torch threads, {blasThreads} OpenBLAS threads, oneDNN {onednn}" : "PyTorch";

        /// <summary>Starts the peer and stops it (<see cref="PythonPeer.Pause"/>): it runs only while it answers a
        /// request, so its idle threads never take CPU time from Nabla's turns.</summary>
        public static Peer? TryStart(string? script, int threads)
        {
            if (PythonPeer.TryStart(script ?? "kernels_peer.py", threads) is not { } peer) return null;
            peer.Pause();
            return new Peer(peer);
        }

        private static string Request(Case c, string contender) => c switch
        {
            AttentionCase a => $"attention {a.B} {a.H} {a.T} {a.D}",
            TrainCase t => $"train {(t.Model == "lenet" ? 0 : 1)} {t.Batch} {(contender.Contains("oneDNN off") ? 0 : 1)}",
            ConvCase v => $"conv {v.N} {v.C} {v.H} {v.W} {v.O} {v.K} {v.K} {v.Stride} {v.Padding} {(contender.Contains("oneDNN off") ? 0 : 1)} {(v.Backward ? 1 : 0)}",
            _ => throw new ArgumentException($"Unknown case {c}."),
        };

        /// <summary>Has the peer time by its calling thread's CPU time from now on.</summary>
        public void UseCpuClock() => Running(() => peer.Ask("clock cpu"));

        /// <summary>A warm-up request standing in for the first step (the peer warms each request up itself).</summary>
        public Action Step(Case c, string contender) => () => Time(c, 1, contender);

        public double[] Time(Case c, int reps, string contender) => Running(() => peer.AskNumbers($"{Request(c, contender)} {reps}"));

        private T Running<T>(Func<T> request)
        {
            peer.Resume();
            try { return request(); }
            finally { peer.Pause(); }
        }

        public void Dispose() => peer.Dispose();
    }
}
