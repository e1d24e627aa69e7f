using System.Diagnostics;
using System.Globalization;
using Nabla.Autograd;
using Nabla.Kernels.Cpu;
using Nabla.NN;

namespace Nabla.Bench;

/// <summary>
/// Recurrent layers against PyTorch 1.13 in the same run (peer: bench/rnn_peer.py under /usr/bin/python3, same thread
/// count): a 2-layer LSTM and GRU (input 256, hidden 512, T = 100, B = 32), forward + backward (gradients of the input
/// and every weight); and the latency of one inference step of one sequence (B = 1, state carried, no autograd).
/// Nabla runs its fused recurrence and, for the training steps, also the per-step autograd graph it replaced
/// (<see cref="RecurrentBase.UseFusedKernels"/> = false). Rounds interleave the contenders; medians are reported.
/// Usage: <c>rnn [--threads N] [--rounds R] [--no-torch] [--no-graph]</c>.
/// </summary>
public static class RnnBench
{
    private sealed record Case(string Mode, bool Training)
    {
        public const int Layers = 2, Input = 256, Hidden = 512, Steps = 100, Batch = 32;
        public string Name => Training
            ? $"{Mode.ToUpperInvariant()} {Layers} layers, in {Input}, hidden {Hidden}, T={Steps}, B={Batch}: forward + backward"
            : $"{Mode.ToUpperInvariant()} {Layers} layers, in {Input}, hidden {Hidden}: one inference step, B=1";
    }

    private sealed record Contender(string Name, Func<Case, Action?> Prepare);

    public static int Run(string[] args)
    {
        int threads = int.Parse(BenchArgs.Value(args, "--threads") ?? "2", CultureInfo.InvariantCulture);
        int rounds = int.Parse(BenchArgs.Value(args, "--rounds") ?? "5", CultureInfo.InvariantCulture);
        WorkerPool.Threads = threads;
        Case[] cases = [new("lstm", true), new("gru", true), new("lstm", false), new("gru", false)];
        using var peer = args.Contains("--no-torch") ? null : RnnPeer.TryStart(threads);
        var contenders = new List<Contender> { new("nabla (fused)", c => OurStep(c, fused: true)) };
        if (!args.Contains("--no-graph")) contenders.Add(new("nabla (per-step graph)", c => c.Training ? OurStep(c, fused: false) : null));
        if (peer != null) contenders.Add(new("pytorch", c => () => peer.Time(c, 1)));

        Console.WriteLine($"Recurrent benchmark: {threads} thread(s), {rounds} interleaved rounds");
        Console.WriteLine($"machine: {MachineInfo.Line}; load average at start {MachineLoad.LoadAverage}");
        Console.WriteLine($"peer: {peer?.Description ?? "none"}");
        var steps = new Dictionary<(Case, Contender), (Action Step, int Reps)>();
        foreach (var c in cases)
            foreach (var contender in contenders)
                if (contender.Prepare(c) is { } step)
                {
                    step(); // warm-up, then as many repetitions as make a round of about 0.3 s
                    var watch = Stopwatch.StartNew();
                    step();
                    steps[(c, contender)] = (step, (int)Math.Clamp(300 / Math.Max(watch.Elapsed.TotalMilliseconds, 1e-3), 1, 500));
                }
        var samples = steps.Keys.ToDictionary(key => key, _ => new List<double>());
        for (int round = 0; round < rounds; round++)
            foreach (var ((c, contender), (step, reps)) in steps)
            {
                Thread.Sleep(200); // let the other side's spinning threads go to sleep
                if (contender.Name == "pytorch") { samples[(c, contender)].AddRange(peer!.Time(c, reps)); continue; }
                for (int r = 0; r < reps; r++)
                {
                    var watch = Stopwatch.StartNew();
                    step();
                    samples[(c, contender)].Add(watch.Elapsed.TotalMilliseconds);
                }
            }
        Console.WriteLine($"load average at end {MachineLoad.LoadAverage}");
        Console.WriteLine();
        Console.WriteLine("| case | contender | median ms | vs PyTorch |");
        Console.WriteLine("|---|---|---:|---|");
        foreach (var c in cases)
        {
            double Median(Contender who) => samples.TryGetValue((c, who), out var s) ? s.Order().ElementAt(s.Count / 2) : double.NaN;
            double torchMs = contenders.Where(x => x.Name == "pytorch").Select(Median).DefaultIfEmpty(double.NaN).First();
            foreach (var contender in contenders)
            {
                double ms = Median(contender);
                if (double.IsNaN(ms)) continue;
                string ratio = contender.Name == "pytorch" || double.IsNaN(torchMs) ? "" : ms <= torchMs ? $"{torchMs / ms:F2}× faster" : $"{ms / torchMs:F2}× slower";
                Console.WriteLine($"| {c.Name} | {contender.Name} | {ms:F3} | {ratio} |");
            }
        }
        return 0;
    }

    private static Action OurStep(Case c, bool fused)
    {
        var g = new Generator(0);
        RecurrentBase layer = c.Mode == "lstm"
            ? new LSTM(Case.Input, Case.Hidden, Case.Layers, generator: g)
            : new GRU(Case.Input, Case.Hidden, Case.Layers, generator: g);
        layer.UseFusedKernels = fused;
        if (c.Training)
        {
            var x = Tensor.Randn(g, Case.Steps, Case.Batch, Case.Input).RequiresGrad_();
            var grad = Tensor.Randn(g, Case.Steps, Case.Batch, Case.Hidden);
            return () =>
            {
                x.Grad = null;
                layer.ZeroGrad();
                layer.Forward(x).Backward(grad);
            };
        }
        var input = Tensor.Randn(g, 1, 1, Case.Input);
        Tensor? h = null, cell = null;
        return () =>
        {
            using var noGrad = GradMode.NoGrad();
            if (layer is LSTM lstm) (_, h, cell) = lstm.Forward(input, h, cell);
            else (_, h) = ((GRU)layer).Forward(input, h);
        };
    }

    /// <summary>bench/rnn_peer.py as a child process, one request line and one answer line at a time.</summary>
    private sealed class RnnPeer(PythonPeer peer) : IDisposable
    {
        public string Description { get; } = peer.Started is [var torchThreads, var blasThreads, var version, ..]
            ? $"PyTorch {version}, {torchThreads} torch threads, {blasThreads} OpenBLAS threads" : "PyTorch";

        public static RnnPeer? TryStart(int threads) => PythonPeer.TryStart("rnn_peer.py", threads) is { } peer ? new RnnPeer(peer) : null;

        public double[] Time(Case c, int reps)
        {
            string request = c.Training
                ? $"train {c.Mode} {Case.Layers} {Case.Input} {Case.Hidden} {Case.Steps} {Case.Batch} {reps}"
                : $"step {c.Mode} {Case.Layers} {Case.Input} {Case.Hidden} {reps}";
            return peer.AskNumbers(request);
        }

        public void Dispose() => peer.Dispose();
    }
}
