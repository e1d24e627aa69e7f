using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Nabla.Models.Gpt2;

namespace Nabla.Bench;

/// <summary>
/// ONNX Runtime (NuGet Microsoft.ML.OnnxRuntime 1.31.1, CPU execution provider, all graph optimisations) as a peer of
/// `bench generate`: the model under test saved in Hugging Face's layout, exported by bench/onnx_gpt2_export.py
/// (torch.onnx.export, opset 17, past key/values as inputs and outputs), then driven from here: a prompt of P tokens
/// in one run, and greedy decoding one token per run with the presents fed back as the next pasts.
/// </summary>
internal sealed class OnnxRuntimePeer : IDisposable
{
    private readonly InferenceSession _session;
    private readonly Gpt2Config _config;
    private readonly string[] _inputNames, _outputNames;

    private OnnxRuntimePeer(InferenceSession session, Gpt2Config config)
    {
        _session = session;
        _config = config;
        var pasts = Enumerable.Range(0, config.Layers).SelectMany(l => new[] { $"past_key_{l}", $"past_value_{l}" }).ToArray();
        _inputNames = ["input_ids", .. pasts];
        _outputNames = ["logits", .. pasts.Select(p => p.Replace("past_", "present_"))];
    }

    /// <summary>Exports the model (or reuses the export in <paramref name="directory"/>) and opens it; null with the reason on stderr when that fails.</summary>
    public static OnnxRuntimePeer? TryStart(Gpt2Model model, string directory, int threads)
    {
        var onnx = Path.Combine(directory, "model.onnx");
        if (!File.Exists(onnx))
        {
            var hf = Path.Combine(directory, "hf");
            Gpt2Checkpoints.SaveHuggingFace(model, hf);
            var script = Path.Combine(AppContext.BaseDirectory, "onnx_gpt2_export.py");
            var start = new ProcessStartInfo("/usr/bin/python3", [script, hf, onnx]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                Console.Error.WriteLine($"ONNX Runtime peer unavailable: {script} failed: {stderr.Result.Trim().Split('\n').LastOrDefault()}");
                return null;
            }
        }
        var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        return new OnnxRuntimePeer(new InferenceSession(onnx, options), model.Config);
    }

    /// <summary>Seconds to run <paramref name="prompt"/> in one pass from an empty cache.</summary>
    public double Prefill(int[] prompt)
    {
        var clock = Stopwatch.StartNew();
        using var outputs = Run(prompt, EmptyPasts());
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>Greedy tokens after a one-token prompt, and the tokens/s of all but the first (which includes the
    /// prompt), as the other rows measure it: by the wall clock, or by <paramref name="clockTicks"/> (e.g. the thread's
    /// CPU clock, with one intra-op thread: ONNX Runtime then runs every kernel on the calling thread).</summary>
    public (double TokensPerSecond, List<int> Tokens) Decode(int first, int tokens, Func<long>? clockTicks = null)
    {
        clockTicks ??= Stopwatch.GetTimestamp;
        var produced = new List<int>();
        var pasts = EmptyPasts();
        int next = first;
        long start = 0;
        for (int step = 0; step <= tokens; step++)
        {
            var outputs = Run([next], pasts);
            foreach (var past in pasts) past.Dispose();
            next = ArgMaxOfLastRow(outputs[0]);
            produced.Add(next);
            pasts = outputs.Skip(1).ToList();
            outputs[0].Dispose();
            if (step == 0) start = clockTicks();
        }
        double seconds = (clockTicks() - start) / (double)Stopwatch.Frequency;
        foreach (var past in pasts) past.Dispose();
        return (tokens / seconds, produced);
    }

    private List<OrtValue> EmptyPasts()
    {
        long[] shape = [1, _config.Heads, 0, _config.Channels / _config.Heads];
        return Enumerable.Range(0, 2 * _config.Layers).Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape)).ToList();
    }

    private IDisposableReadOnlyCollection<OrtValue> Run(int[] ids, List<OrtValue> pasts)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(ids.Select(i => (long)i).ToArray(), [1, ids.Length]);
        using var runOptions = new RunOptions();
        return _session.Run(runOptions, _inputNames, [input, .. pasts], _outputNames);
    }

    private int ArgMaxOfLastRow(OrtValue logits)
    {
        var values = logits.GetTensorDataAsSpan<float>();
        return Nabla.Models.Gpt2.Sampler.ArgMax(values[^_config.VocabSize..]);
    }

    public void Dispose() => _session.Dispose();
}
