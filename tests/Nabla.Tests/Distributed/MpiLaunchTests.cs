using System.Diagnostics;
using Nabla.Cli.Ui;
using Nabla.IO;
using Nabla.Tests.Cli;

namespace Nabla.Tests.Distributed;

/// <summary>A test that starts ranks with Open MPI's mpirun (installed by .ci/run); skipped, saying how to install it,
/// only where mpirun or libmpi.so.40 is absent.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        bool mpirun = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "mpirun")));
        bool library = File.Exists("/usr/lib/x86_64-linux-gnu/libmpi.so.40") || File.Exists("/usr/lib/aarch64-linux-gnu/libmpi.so.40");
        if (!mpirun || !library) Skip = "Open MPI is not installed: apt-get install openmpi-bin libopenmpi-dev.";
    }
}

/// <summary>
/// The CLI trained on several ranks through a real mpirun (ranks on this machine, oversubscribed) must reach the
/// parameters one rank reaches on the same global batches (not bitwise: see <see cref="DataParallelTests"/>), and a
/// rank that dies must end the job promptly, naming it, with a run that resumes exactly.
/// </summary>
[Collection("Console")]
public class MpiLaunchTests : IDisposable
{
    private static readonly string Cli = typeof(Nabla.Cli.NablaCli).Assembly.Location;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "nabla-mpi-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private string Dir(string name) => Path.Combine(_root, name);

    private sealed record Launch(int ExitCode, string Output, double Seconds, double? SecondsAfterMarker);

    /// <summary>Runs `mpirun -np N dotnet nabla ARGS` (or, with ranks 0, `dotnet nabla ARGS` itself). With a
    /// <paramref name="marker"/>, also how long the job lived after the first output line containing it.</summary>
    private static Launch Run(int ranks, IEnumerable<string> args, Dictionary<string, string>? environment = null, string? marker = null,
        string[]? mpirunOptions = null)
    {
        var start = ranks == 0 ? new ProcessStartInfo("dotnet") : new ProcessStartInfo("mpirun");
        if (ranks > 0)
        {
            foreach (var a in new[] { "-np", ranks.ToString(), "--oversubscribe" }.Concat(mpirunOptions ?? [])) start.ArgumentList.Add(a);
            if (Environment.UserName == "root") start.ArgumentList.Add("--allow-run-as-root");
        }
        if (ranks > 0) start.ArgumentList.Add("dotnet");
        start.ArgumentList.Add(Cli);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        start.Environment["TERM"] = "dumb";
        start.Environment.Remove("NABLA_THREADS");
        foreach (var (k, v) in environment ?? []) start.Environment[k] = v;
        var output = new System.Text.StringBuilder();
        var clock = Stopwatch.StartNew();
        double? markerAt = null;
        using var process = new Process { StartInfo = start };
        DataReceivedEventHandler collect = (_, e) =>
        {
            if (e.Data == null) return;
            lock (output)
            {
                output.AppendLine(e.Data);
                if (marker != null && markerAt == null && e.Data.Contains(marker)) markerAt = clock.Elapsed.TotalSeconds;
            }
        };
        process.OutputDataReceived += collect;
        process.ErrorDataReceived += collect;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // Only a guard against a hang (how promptly a failing job ends is measured apart): ranks start slowly when other
        // processes load the machine.
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mpirun did not finish in 10 minutes:\n{output}");
        }
        process.WaitForExit();
        double seconds = clock.Elapsed.TotalSeconds;
        lock (output) return new Launch(process.ExitCode, output.ToString(), seconds, markerAt is { } m ? seconds - m : null);
    }

    private static Dictionary<string, float[]> Checkpoint(string run, string file = "model.safetensors")
    {
        var last = Directory.GetDirectories(Path.Combine(run, "checkpoints")).Order().Last();
        return SafeTensors.Load(Path.Combine(last, file)).ToDictionary(kv => kv.Key,
            kv => kv.Value.DType == DType.Int32 ? kv.Value.ToIntArray().Select(v => (float)v).ToArray() : kv.Value.ToArray());
    }

    private static void AssertClose(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual, Func<string, int, bool>? ignore = null)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, e) in expected)
            for (int i = 0; i < e.Length; i++)
                if (ignore?.Invoke(name, i) != true)
                    Assert.True(Math.Abs(e[i] - actual[name][i]) <= 2e-6f * Math.Max(1, Math.Abs(e[i])), $"{name}[{i}]: one rank {e[i]}, several {actual[name][i]}");
    }

    private static string[] Gpt(string dir) =>
        ["train", "gpt", "--layers", "1", "--channels", "16", "--heads", "2", "--batch-size", "8", "--steps", "6", "--sample-every", "0",
         "--checkpoint-every", "3", "--digits", "2", "--out", dir];

    /// <summary>The key bias (elements [C, 2C) of c_attn.bias) has an exactly-zero true gradient, so what Adam makes of its
    /// rounding noise differs between runs (see <see cref="DataParallelTests.TinyGptOnTwoRanksMatchesOneRank"/>).</summary>
    private static bool KeyBias(string name, int i) => name.EndsWith("attn.c_attn.bias") && i is >= 16 and < 32;

    [MpiFact]
    public void GptOnTwoAndFourRanksMatchesOneRankAndARankKilledMidRunStopsTheJobAndResumes()
    {
        var one = CliRunner.Run(Gpt(Dir("one")));
        Assert.True(one.Exit == 0, one.Err);
        var expected = Checkpoint(Dir("one"));

        foreach (var (ranks, zero) in new[] { (2, false), (4, false), (2, true) })
        {
            var dir = Dir($"ranks{ranks}{(zero ? "-zero" : "")}");
            var run = Run(ranks, zero ? [.. Gpt(dir), "--zero"] : Gpt(dir));
            Assert.True(run.ExitCode == 0, run.Output);
            Assert.Contains($"data parallel: {ranks} ranks, {8 / ranks} sequences of each batch per rank", run.Output);
            Assert.Equal(zero, run.Output.Contains("optimizer state sharded (ZeRO-1)"));
            Assert.Single(run.Output.Split('\n'), l => l.StartsWith("run saved to")); // rank 0 alone prints
            AssertClose(expected, Checkpoint(Dir($"ranks{ranks}{(zero ? "-zero" : "")}")), KeyBias);
            // The optimizer state in the checkpoint is whole, also when it was sharded.
            AssertClose(Checkpoint(Dir("one"), "optimizer.safetensors"), Checkpoint(dir, "optimizer.safetensors"), KeyBias);
        }

        // Rank 1 dies (SIGKILL) after step 4; the checkpoint of step 3 is complete.
        var killed = Run(2, Gpt(Dir("killed")), new() { [TrainingLoop.KillVariable] = "1:4" }, marker: "killing itself");
        Assert.NotEqual(0, killed.ExitCode);
        Assert.Contains("process rank 1", killed.Output); // mpirun names it: "mpirun noticed that process rank 1 ... exited on signal 9 (Killed)"
        Assert.True(killed.SecondsAfterMarker < 10, $"the job lived {killed.SecondsAfterMarker:F1} s after rank 1 died:\n{killed.Output}");
        Assert.False(File.Exists(Path.Combine(Dir("killed"), "model", "model.safetensors")));

        // Resumed on another number of ranks (one, in this process): the same parameters as the uninterrupted runs.
        var resumed = CliRunner.Run("train", "gpt", "--out", Dir("killed"), "--resume");
        Assert.True(resumed.Exit == 0, resumed.Err);
        Assert.Contains("resumed from the checkpoint at step 3", resumed.Out);
        AssertClose(expected, Checkpoint(Dir("killed")), KeyBias);
    }

    [MpiFact]
    public void MlpOnTwoRanksByRanksOptionAndFourByMpirunMatchesOneRank()
    {
        // Iris: 120 training rows, 15 batches of 8 per epoch, which 2 and 4 ranks share equally.
        string[] Mlp(string dir) => ["train", "mlp", "--epochs", "1", "--batch-size", "8", "--hidden", "16", "--quiet", "--out", dir];
        var one = CliRunner.Run(Mlp(Dir("one")));
        Assert.True(one.Exit == 0, one.Err);
        var expected = Checkpoint(Dir("one"));

        var two = Run(0, [.. Mlp(Dir("two")), "--ranks", "2"]); // `nabla train mlp --ranks 2` runs mpirun itself
        Assert.True(two.ExitCode == 0, two.Output);
        AssertClose(expected, Checkpoint(Dir("two")));

        var four = Run(4, Mlp(Dir("four")));
        Assert.True(four.ExitCode == 0, four.Output);
        AssertClose(expected, Checkpoint(Dir("four")));
        // The ranks agree with rank 0's log: one line per step, written once.
        Assert.Equal(File.ReadAllLines(Path.Combine(Dir("one"), "metrics.jsonl")).Length, File.ReadAllLines(Path.Combine(Dir("four"), "metrics.jsonl")).Length);
    }

    [MpiFact]
    public void CollectivesAreRightOverSharedMemoryAndTcpAndAFailingRankNamesItselfAndEndsTheJob()
    {
        var shared = Run(3, ["distributed", "check", "--megabytes", "1"]);
        Assert.True(shared.ExitCode == 0, shared.Output);
        Assert.Contains("3 rank(s): all-reduce, reduce-scatter, all-gather, broadcast and barrier gave the expected results.", shared.Output);
        // Ranks talking TCP over loopback, as ranks on separate machines do.
        var tcp = Run(2, ["distributed", "check", "--megabytes", "1"], mpirunOptions: ["--mca", "btl", "tcp,self"]);
        Assert.True(tcp.ExitCode == 0, tcp.Output);
        Assert.Contains("2 rank(s): all-reduce", tcp.Output);

        // A batch of 8 cannot be shared by 3 ranks: each rank says so, naming itself, and the job ends (no hang).
        var failing = Run(3, [.. Gpt(Dir("failing"))]);
        Assert.NotEqual(0, failing.ExitCode);
        Assert.Matches(@"error: rank \d of 3: batch 0 has 8 rows, which the 3 ranks cannot share equally; choose a batch size divisible by the number of ranks\.", failing.Output);
    }
}
