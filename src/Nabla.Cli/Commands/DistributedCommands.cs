using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Nabla.Cli.Runs;
using Nabla.Data;
using Nabla.Distributed;
using Nabla.Models.Gpt2;
using Nabla.Optim;
using Nabla.Training;

namespace Nabla.Cli.Commands;

/// <summary>`nabla distributed check|bench`: is MPI working across these ranks, and what does data parallelism cost.
/// Both run on every rank: `mpirun -np N nabla distributed ...`, or `nabla distributed ... --ranks N` on one machine.</summary>
public static class DistributedCommands
{
    public static Command Create()
    {
        var command = new Command("distributed", "Data-parallel training over MPI: check the collectives, measure their cost.");
        command.Subcommands.Add(Check());
        command.Subcommands.Add(Bench());
        return command;
    }

    private static Command Check()
    {
        var megabytes = new Option<int>("--megabytes") { Description = "Size of the all-reduce whose bandwidth is measured.", DefaultValueFactory = _ => 25 };
        var ranks = DistributedRun.RanksOption();
        megabytes.Positive(1 << 14);
        var command = new Command("check", "Runs every collective across the ranks against known answers, then measures all-reduce bandwidth.") { megabytes, ranks };
        command.SetAction(p =>
        {
            if (DistributedRun.Relaunch(p, ranks) is { } exitCode) return exitCode;
            using var distributed = DistributedRun.Join();
            return distributed.Run(() => RunCheck(distributed.Communicator ?? new SingleProcessCommunicator(), p.GetValue(megabytes)));
        });
        return command;
    }

    private static int RunCheck(ICommunicator c, int megabytes)
    {
        int n = c.Size, r = c.Rank;
        // Rank r's values are r·1000 + i: sums of them are exact in float, so every answer is checked for equality.
        float[] Values(int rank, int count) => Enumerable.Range(0, count).Select(i => rank * 1000f + i).ToArray();
        float SumOver(int i) => Enumerable.Range(0, n).Sum(rank => rank * 1000f + i);
        var failures = new List<string>();
        void Expect(string what, bool ok) { if (!ok) failures.Add(what); }

        var buffer = Values(r, 5);
        c.AllReduce(buffer, ReduceOp.Sum);
        Expect("all-reduce sum", buffer.Select((v, i) => v == SumOver(i)).All(b => b));
        var mean = Tensor.FromArray(Values(r, 5), 5);
        c.AllReduceAsync(mean, ReduceOp.Average).Wait();
        Expect("all-reduce average (async)", mean.ToArray().Select((v, i) => Math.Abs(v - SumOver(i) / n) <= 1e-3f).All(b => b));
        var block = new float[3];
        c.ReduceScatter(Values(r, 3 * n), block);
        Expect("reduce-scatter", block.Select((v, i) => v == SumOver(r * 3 + i)).All(b => b));
        var gathered = new float[2 * n];
        c.AllGather(Values(r, 2), gathered);
        Expect("all-gather", gathered.Select((v, i) => v == (i / 2) * 1000f + i % 2).All(b => b));
        var broadcast = Values(r, 4);
        c.Broadcast(broadcast, root: n - 1);
        Expect("broadcast", broadcast.SequenceEqual(Values(n - 1, 4)));
        c.Barrier();

        // Everyone's verdict, so that every rank reports the same outcome.
        var verdicts = new float[n];
        c.AllGather([failures.Count], verdicts);
        if (failures.Count > 0) Console.Error.WriteLine($"rank {r}: wrong results from {string.Join(", ", failures)}");
        var badRanks = Enumerable.Range(0, n).Where(i => verdicts[i] > 0).ToList();
        if (badRanks.Count > 0) throw new CliException($"collectives gave wrong results on rank(s) {string.Join(", ", badRanks)}.");
        Console.WriteLine($"{n} rank(s): all-reduce, reduce-scatter, all-gather, broadcast and barrier gave the expected results.");

        var big = Tensor.Zeros(megabytes << 18);
        c.AllReduce(big.AsSpan(), ReduceOp.Sum); // warm-up: connections and buffers are set up on first use
        const int repeats = 3;
        c.Barrier();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < repeats; i++) c.AllReduce(big.AsSpan(), ReduceOp.Sum);
        double seconds = clock.Elapsed.TotalSeconds / repeats;
        double bytes = megabytes * 1048576.0;
        // Bus bandwidth (NCCL tests' convention): what each rank's link carries in a ring all-reduce, 2(n-1)/n × the data.
        double busBandwidth = n > 1 ? bytes * 2 * (n - 1) / n / seconds : 0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"all-reduce of {megabytes} MiB: {seconds * 1000:F1} ms, bus bandwidth {busBandwidth / 1e9:F2} GB/s ({busBandwidth * 8 / 1e9:F1} Gbit/s)"));
        return 0;
    }

    private static Command Bench()
    {
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 12, Description = "Transformer blocks (GPT-2 124M: 12)." };
        var channels = new Option<int>("--channels") { DefaultValueFactory = _ => 768, Description = "Embedding width (124M: 768)." };
        var heads = new Option<int>("--heads") { DefaultValueFactory = _ => 12, Description = "Attention heads (124M: 12)." };
        var vocab = new Option<int>("--vocab") { DefaultValueFactory = _ => 50257, Description = "Vocabulary size (124M: 50257)." };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 4, Description = "Sequences per rank per step (the global batch grows with the ranks)." };
        var seqLen = new Option<int>("--seq-len") { DefaultValueFactory = _ => 256, Description = "Tokens per sequence." };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 3, Description = "Timed steps, with and then without overlap (after one warm-up step each)." };
        var ranks = DistributedRun.RanksOption();
        foreach (var o in new[] { layers, channels, heads, vocab, batch, seqLen, steps }) o.Positive(1 << 20);
        var command = new Command("bench", "GPT-2 training steps on every rank: tokens/s, step time, and gradient all-reduce time alone, waited for with overlap, and without.")
        {
            layers, channels, heads, vocab, batch, seqLen, steps, ranks,
        };
        command.SetAction(p =>
        {
            if (DistributedRun.Relaunch(p, ranks) is { } exitCode) return exitCode;
            using var distributed = DistributedRun.Join();
            var config = new Gpt2Config
            {
                Layers = p.GetValue(layers), Channels = p.GetValue(channels), Heads = p.GetValue(heads), VocabSize = p.GetValue(vocab),
                MaxSequenceLength = p.GetValue(seqLen),
            };
            return distributed.Run(() => RunBench(distributed, config, p.GetValue(batch), p.GetValue(seqLen), p.GetValue(steps)));
        });
        return command;
    }

    private static int RunBench(DistributedRun distributed, Gpt2Config config, int batchPerRank, int sequenceLength, int steps)
    {
        var c = distributed.Communicator ?? new SingleProcessCommunicator();
        var model = new Gpt2Model(config, new Generator(1));
        int globalBatch = batchPerRank * c.Size;
        var g = new Generator(2);
        var tokens = Enumerable.Range(0, globalBatch * (sequenceLength + 1) * 4).Select(_ => g.NextInt(config.VocabSize)).ToArray();
        var data = new TokenBatchLoader(tokens, globalBatch, sequenceLength, shuffleSeed: 3);
        Console.WriteLine($"GPT-2 {config.Layers} layers, {config.Channels} channels: {model.ParameterCount:N0} parameters ({model.ParameterCount * 4 / 1e6:F0} MB of gradients); " +
            $"{c.Size} rank(s) × {Nabla.Kernels.Cpu.WorkerPool.Threads} thread(s), {batchPerRank}×{sequenceLength} tokens per rank per step");

        // The gradients' all-reduce alone, on a buffer of their size.
        var flat = Tensor.Zeros(checked((int)model.ParameterCount));
        c.AllReduce(flat.AsSpan(), ReduceOp.Average);
        c.Barrier();
        var clock = Stopwatch.StartNew();
        c.AllReduce(flat.AsSpan(), ReduceOp.Average);
        double allReduceMs = clock.Elapsed.TotalMilliseconds;

        foreach (bool overlap in new[] { true, false })
        {
            var trainer = new Trainer(model, (logits, targets) => Gpt2Model.Loss(logits, targets), data, new AdamW(model.Parameters(), 6e-4f),
                new TrainerOptions { Steps = steps + 1, ClipGradNorm = 1, OverlapGradientCommunication = overlap }, communicator: c);
            var stepMs = new List<double>();
            var waitedMs = new List<double>();
            trainer.AfterStep += s =>
            {
                if (s.Step == 1) return; // warm-up
                stepMs.Add(s.Milliseconds);
                waitedMs.Add(trainer.ExposedCommunicationMilliseconds);
            };
            trainer.Train();
            double step = stepMs.Average();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"overlap {(overlap ? "on " : "off")}: step {step:F0} ms, {globalBatch * sequenceLength / (step / 1000):F0} tokens/s; " +
                $"gradient all-reduce alone {allReduceMs:F0} ms, waited for after backward {waitedMs.Average():F0} ms"));
        }
        return 0;
    }
}
