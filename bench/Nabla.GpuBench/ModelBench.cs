using System.Diagnostics;
using System.Text.Json.Nodes;
using Nabla.Models.Gpt2;
using Nabla.Optim;

namespace Nabla.GpuBench;

/// <summary>
/// GPT-2 124M on the device, with the classes `nabla train gpt --device cuda` and `nabla generate` use
/// (<see cref="Gpt2Model"/>, <see cref="AdamW"/> over <see cref="Gpt2Model.WeightDecayGroups"/>, <see cref="Sampler.NextLogits"/>):
/// <list type="bullet">
/// <item>a training step at B = 8, T = 1024: forward, cross-entropy, backward, AdamW (the CLI's defaults: lr 6e-4,
/// β = (0.9, 0.95), weight decay 0.1 on matrices); random weights (seed 0) and one fixed random batch, so data loading is
/// not timed. <see cref="Gpt2Sizes.WarmUpSteps"/> untimed steps (kernel compilation, pools, AdamW's state), then the median
/// of 3 to 10 timed steps (as many as fit in 15 s);</item>
/// <item>greedy generation at B = 1 with the KV cache: a 64-token prompt (prefill) then 128 new tokens, one forward each
/// (decode), the logits copied to the host and arg-maxed there as `nabla generate` does; one untimed round, then the
/// median of 3 to 5 rounds (as many as fit in 10 s). Prefill and decode are timed separately.</item>
/// </list>
/// The device is synchronised before every clock read. bench/gpu/torch_peer.py's gpt2() does the same in PyTorch, with the
/// same sizes and JSON fields. --smoke runs a tiny GPT-2 (<see cref="Gpt2Sizes.Smoke"/>).
/// </summary>
public static class ModelBench
{
    public static void Run(Device device, BenchOptions options, Report report)
    {
        var sizes = options.Smoke ? Gpt2Sizes.Smoke : Gpt2Sizes.Full;
        var c = sizes.Config;
        var model = new Gpt2Model(c, new Generator(0));
        model.To(device);
        var result = new JsonObject
        {
            ["config"] = new JsonObject
            {
                ["layers"] = c.Layers, ["channels"] = c.Channels, ["heads"] = c.Heads, ["vocab"] = c.VocabSize, ["context"] = c.MaxSequenceLength,
            },
            ["parameters"] = model.ParameterCount,
            ["training_step"] = TrainingStep(model, device, sizes),
            ["generation"] = GenerationSizes(sizes), // the rates follow; until then the report says "–"
        };
        report.Results["gpt2"] = result;
        report.Write(options.OutDirectory);
        result["generation"] = Generation(model, device, sizes);
    }

    private static JsonObject TrainingStep(Gpt2Model model, Device device, Gpt2Sizes sizes)
    {
        var (decay, noDecay) = model.WeightDecayGroups();
        var optimizer = new AdamW([new ParamGroup(decay, weightDecay: 0.1f), new ParamGroup(noDecay, weightDecay: 0f)],
            learningRate: 6e-4f, beta1: 0.9f, beta2: 0.95f, eps: 1e-8f);
        var tokens = Tensor.RandInt(new Generator(1), 0, model.Config.VocabSize, sizes.Batch, sizes.T + 1);
        var x = tokens.Narrow(1, 0, sizes.T).Contiguous().To(device); // (B, T)
        var y = tokens.Narrow(1, 1, sizes.T).Contiguous().To(device); // (B, T), the next tokens
        var losses = new List<float>();
        model.Train();
        void Step()
        {
            using var scope = MemoryScope.Begin(); // the step's activations go back to the pool at its end
            var loss = Gpt2Model.Loss(model.Forward(x), y);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
            losses.Add(loss.Item()); // the copy waits for the step's kernels (one queue); Measure synchronises again
        }
        var times = Timing.Measure(device.Synchronize, Step, sizes.TrainingSeconds, sizes.MinSteps, sizes.MaxSteps, sizes.WarmUpSteps);
        double ms = Timing.Median(times);
        double tokensPerSecond = sizes.Batch * sizes.T / (ms / 1e3);
        Console.WriteLine($"  gpt2 training step B={sizes.Batch} T={sizes.T}: {ms,9:F1} ms, {tokensPerSecond,9:F0} tokens/s (median of {times.Count}; loss {losses[0]:F3} → {losses[^1]:F3})");
        return new JsonObject
        {
            ["batch"] = sizes.Batch, ["t"] = sizes.T,
            ["warm_up_steps"] = sizes.WarmUpSteps, ["timed_steps"] = times.Count,
            ["ms"] = Math.Round(ms, 3),
            ["tokens_per_s"] = Math.Round(tokensPerSecond, 1),
            ["loss_first"] = Math.Round(losses[0], 4), ["loss_last"] = Math.Round(losses[^1], 4),
        };
    }

    private static JsonObject Generation(Gpt2Model model, Device device, Gpt2Sizes sizes)
    {
        model.Eval();
        var prompt = Enumerable.Range(0, sizes.Prompt).Select(i => i * 31 % model.Config.VocabSize).ToArray();
        var logits = new float[model.Config.VocabSize];
        var prefill = new List<double>();
        var decode = new List<double>();
        void Generate()
        {
            var cache = model.NewCache(1, sizes.Prompt + sizes.NewTokens);
            var clock = Stopwatch.StartNew();
            Sampler.NextLogits(model, prompt, cache, logits); // ends with the logits' copy to the host: synchronised
            prefill.Add(clock.Elapsed.TotalMilliseconds);
            clock.Restart();
            for (int i = 0; i < sizes.NewTokens; i++) Sampler.NextLogits(model, [Sampler.ArgMax(logits)], cache, logits);
            decode.Add(clock.Elapsed.TotalMilliseconds);
        }
        var rounds = Timing.Measure(device.Synchronize, Generate, sizes.GenerationSeconds, sizes.MinRounds, sizes.MaxRounds, sizes.WarmUpRounds);
        prefill.RemoveRange(0, sizes.WarmUpRounds);
        decode.RemoveRange(0, sizes.WarmUpRounds);
        double prefillMs = Timing.Median(prefill), decodeMs = Timing.Median(decode);
        Console.WriteLine($"  gpt2 generation: prefill {sizes.Prompt} tokens {prefillMs,9:F1} ms ({sizes.Prompt / (prefillMs / 1e3):F0} tokens/s), " +
                          $"decode {sizes.NewTokens} tokens {decodeMs,9:F1} ms ({sizes.NewTokens / (decodeMs / 1e3):F1} tokens/s) (median of {rounds.Count})");
        var result = GenerationSizes(sizes);
        result["rounds"] = rounds.Count;
        result["prefill_ms"] = Math.Round(prefillMs, 3);
        result["prefill_tokens_per_s"] = Math.Round(sizes.Prompt / (prefillMs / 1e3), 1);
        result["decode_ms"] = Math.Round(decodeMs, 3);
        result["decode_tokens_per_s"] = Math.Round(sizes.NewTokens / (decodeMs / 1e3), 1);
        return result;
    }

    private static JsonObject GenerationSizes(Gpt2Sizes sizes) => new()
    {
        ["batch"] = 1, ["prompt_tokens"] = sizes.Prompt, ["new_tokens"] = sizes.NewTokens, ["warm_up_rounds"] = sizes.WarmUpRounds,
    };
}

/// <summary>The model and the work of the GPT-2 rows; torch_peer.py's GPT2_SIZES and GPT2_SMOKE_SIZES hold the same numbers.</summary>
public sealed record Gpt2Sizes(Gpt2Config Config, int Batch, int T, int WarmUpSteps, int MinSteps, int MaxSteps, double TrainingSeconds,
    int Prompt, int NewTokens, int WarmUpRounds, int MinRounds, int MaxRounds, double GenerationSeconds)
{
    /// <summary>GPT-2 124M (12 layers, 768 channels, 12 heads, vocabulary 50257, context 1024).</summary>
    public static Gpt2Sizes Full { get; } = new(Gpt2Config.Gpt2Small, Batch: 8, T: 1024, WarmUpSteps: 2, MinSteps: 3, MaxSteps: 10, TrainingSeconds: 15,
        Prompt: 64, NewTokens: 128, WarmUpRounds: 1, MinRounds: 3, MaxRounds: 5, GenerationSeconds: 10);

    /// <summary>As few kernel launches as cover every part: each costs milliseconds on ILGPU's CPU accelerator. Measures nothing.</summary>
    public static Gpt2Sizes Smoke { get; } = new(new Gpt2Config { Layers = 1, Channels = 16, Heads = 2, VocabSize = 32, MaxSequenceLength = 16 },
        Batch: 1, T: 8, WarmUpSteps: 1, MinSteps: 1, MaxSteps: 1, TrainingSeconds: 0, Prompt: 3, NewTokens: 2, WarmUpRounds: 0, MinRounds: 1, MaxRounds: 1,
        GenerationSeconds: 0);
}
