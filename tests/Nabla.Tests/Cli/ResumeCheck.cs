using System.Diagnostics;
using System.Text.Json.Nodes;
using Nabla.Cli.Ui;
using Nabla.IO;

namespace Nabla.Tests.Cli;

/// <summary>
/// The resume test every training command gets: the same run straight through, and stopped midway (as Ctrl+C stops it,
/// or killed as a crash kills it) then resumed with `--out DIR --resume`, must end in the same state to the bit: the
/// parameters (frozen ones and buffers included where the checkpoint holds them), the optimizer state, and every step's
/// loss, learning rate and gradient norm (which also proves the data order and the dropout masks are the same).
/// </summary>
public static class ResumeCheck
{
    private static readonly string Cli = typeof(Nabla.Cli.NablaCli).Assembly.Location;

    /// <summary>Runs <paramref name="command"/> (the words and options of a new run, less --out) into ROOT/straight, and
    /// into ROOT/stopped stopped after step <paramref name="stopAt"/>, then resumes the latter; compares the two runs'
    /// last checkpoints, their metrics and the files named in <paramref name="outputs"/>. Returns the resume's output.</summary>
    /// <param name="commandWords">How many leading words of <paramref name="command"/> name the command (e.g. 2 for "finetune gpt").</param>
    public static string StoppedAndResumedMatchesStraight(string root, string[] command, int commandWords, int stopAt, params string[] outputs)
    {
        var (straight, stopped) = (Path.Combine(root, "straight"), Path.Combine(root, "stopped"));
        CliTest.Ok(CliRunner.Run([.. command, "--out", straight]));
        var first = WithVariable(TrainingLoop.StopVariable, stopAt.ToString(), () => CliRunner.Run([.. command, "--out", stopped]));
        Assert.True(first.Exit == 130, $"the stopped run should exit 130\n{first.Out}\n{first.Err}");
        Assert.Contains($"interrupted at step {stopAt} of ", first.Out);
        Assert.Contains($"Continue with: nabla {string.Join(' ', command[..commandWords])} --out {stopped} --resume", first.Out);
        return ResumeAndCompare(straight, stopped, command[..commandWords], outputs);
    }

    /// <summary>Runs <paramref name="command"/> (less --out) in a new process into ROOT/killed, which kills itself (SIGKILL)
    /// after step <paramref name="killAt"/>, then resumes it in this process and compares it with the finished run in
    /// <paramref name="straight"/> (of the same options). Returns the resume's output.</summary>
    public static string KilledAndResumedMatchesStraight(string root, string straight, string[] command, int commandWords, int killAt, params string[] outputs)
    {
        var killed = Path.Combine(root, "killed");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var word in new[] { Cli }.Concat(command).Concat(["--out", killed])) start.ArgumentList.Add(word);
        start.Environment["TERM"] = "dumb";
        start.Environment[TrainingLoop.KillVariable] = $"0:{killAt}";
        using (var process = Process.Start(start)!)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(10))) // only a guard against a hang
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"the run to be killed after step {killAt} did not end within 10 minutes");
            }
            Assert.True(process.ExitCode == 137, $"the run should have killed itself\n{stdout.Result}\n{stderr.Result}");
            Assert.Contains($"killing itself after step {killAt}", stderr.Result);
        }
        return ResumeAndCompare(straight, killed, command[..commandWords], outputs);
    }

    private static string ResumeAndCompare(string straight, string interrupted, string[] command, string[] outputs)
    {
        var resumed = CliRunner.Run([.. command, "--out", interrupted, "--resume"]);
        CliTest.Ok(resumed);
        foreach (var file in new[] { "model.safetensors", "optimizer.safetensors" })
            AssertSameTensors(Path.Combine(LastCheckpoint(straight), file), Path.Combine(LastCheckpoint(interrupted), file));
        foreach (var file in outputs) AssertSameTensors(Path.Combine(straight, file), Path.Combine(interrupted, file));
        Assert.Equal(Metrics(straight), Metrics(interrupted));
        return resumed.Out;
    }

    /// <summary>Runs <paramref name="body"/> with an environment variable set (the CLI tests run one at a time).</summary>
    public static T WithVariable<T>(string name, string value, Func<T> body)
    {
        Environment.SetEnvironmentVariable(name, value);
        try { return body(); }
        finally { Environment.SetEnvironmentVariable(name, null); }
    }

    private static string LastCheckpoint(string run) => Directory.GetDirectories(Path.Combine(run, "checkpoints")).Order().Last();

    private static void AssertSameTensors(string expectedPath, string actualPath)
    {
        var (expected, actual) = (SafeTensors.Load(expectedPath), SafeTensors.Load(actualPath));
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, tensor) in expected)
            Assert.True(tensor.DType == actual[name].DType && Bits(tensor).SequenceEqual(Bits(actual[name])), $"{name} in {actualPath} differs from the uninterrupted run's");
    }

    private static int[] Bits(Tensor t) => t.DType == DType.Int32 ? t.ToIntArray() : t.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    /// <summary>metrics.jsonl without its timings: every step's loss, learning rate, gradient norm and metrics, and every validation.</summary>
    private static string[] Metrics(string run) => File.ReadLines(Path.Combine(run, "metrics.jsonl")).Select(line =>
    {
        var record = JsonNode.Parse(line)!.AsObject();
        record.Remove("ms");
        record.Remove("samples_per_second");
        return record.ToJsonString();
    }).ToArray();
}
