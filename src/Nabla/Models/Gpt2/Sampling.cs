using Nabla.Autograd;
using Nabla.NN;

namespace Nabla.Models.Gpt2;

/// <summary>How the next token is chosen from the logits.</summary>
public sealed record SamplingOptions
{
    /// <summary>Divides the logits; 0 means greedy (always the most likely token).</summary>
    public float Temperature { get; init; } = 1f;
    /// <summary>Keep only the k most likely tokens (0: all).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probabilities add up to p (1: all).</summary>
    public float TopP { get; init; } = 1f;
    public int MaxNewTokens { get; init; } = 100;

    public void Validate()
    {
        if (Temperature < 0) throw new ArgumentException($"Temperature must be ≥ 0, got {Temperature}.");
        if (TopK < 0) throw new ArgumentException($"top-k must be ≥ 0, got {TopK}.");
        if (TopP is <= 0 or > 1) throw new ArgumentException($"top-p must be in (0, 1], got {TopP}.");
        if (MaxNewTokens < 0) throw new ArgumentException($"max tokens must be ≥ 0, got {MaxNewTokens}.");
    }
}

public static class Sampler
{
    /// <summary>Picks a token from one row of logits.</summary>
    public static int Sample(ReadOnlySpan<float> logits, SamplingOptions options, Generator generator)
    {
        if (options.Temperature == 0) return ArgMax(logits);
        int n = logits.Length;
        var order = new int[n];
        var probs = new double[n];
        double max = double.NegativeInfinity;
        foreach (var l in logits) max = Math.Max(max, l);
        for (int i = 0; i < n; i++) { order[i] = i; probs[i] = Math.Exp((logits[i] - max) / options.Temperature); }
        // Most likely first; then cut to top-k and to the top-p nucleus.
        Array.Sort(order, (a, b) => probs[b].CompareTo(probs[a]));
        int keep = options.TopK > 0 ? Math.Min(options.TopK, n) : n;
        double total = 0;
        for (int i = 0; i < keep; i++) total += probs[order[i]];
        if (options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[order[i]] / total;
                if (cumulative >= options.TopP) { keep = i + 1; break; }
            }
            total = 0;
            for (int i = 0; i < keep; i++) total += probs[order[i]];
        }
        double r = generator.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            r -= probs[order[i]];
            if (r <= 0) return order[i];
        }
        return order[keep - 1];
    }

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>
    /// Continues <paramref name="prompt"/> one token at a time with a KV cache, yielding each new token as soon as
    /// it exists. Stops after <see cref="SamplingOptions.MaxNewTokens"/> or at <paramref name="stopToken"/> (not
    /// yielded). When the model's context fills up, the cache is rebuilt from the last half of the context,
    /// so generation can go on past it (each token then sees at least half a context of history).
    /// </summary>
    public static IEnumerable<int> Generate(Gpt2Model model, IReadOnlyList<int> prompt, SamplingOptions options, Generator generator, int? stopToken = null)
    {
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("The prompt must have at least one token.");
        int context = model.Config.MaxSequenceLength;
        if (prompt.Count > context) throw new ArgumentException($"The prompt has {prompt.Count} tokens; the model's context is {context}.");
        var cache = model.NewCache(1, Math.Min(context, prompt.Count + options.MaxNewTokens));
        model.Eval();
        var history = new List<int>(prompt);
        var last = new float[model.Config.VocabSize]; // reused for every token
        NextLogits(model, prompt.ToArray(), cache, last);
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            int next = Sample(last, options, generator);
            if (next == stopToken) yield break;
            yield return next;
            history.Add(next);
            if (produced + 1 == options.MaxNewTokens) yield break;
            if (cache.Length < cache.Capacity) NextLogits(model, [next], cache, last);
            else
            {
                cache.Clear();
                int keep = Math.Max(1, cache.Capacity / 2);
                NextLogits(model, history.GetRange(history.Count - keep, keep).ToArray(), cache, last);
            }
        }
    }

    /// <summary>Runs <paramref name="tokens"/> through the model (advancing the cache) and returns the logits of the last one.</summary>
    public static float[] NextLogits(Gpt2Model model, int[] tokens, KvCache cache)
    {
        var logits = new float[model.Config.VocabSize];
        NextLogits(model, tokens, cache, logits);
        return logits;
    }

    /// <summary>Runs <paramref name="tokens"/> through the model (advancing the cache) and writes the logits of the
    /// last one into <paramref name="logits"/>. Only that position goes through the head, and every tensor of the
    /// step goes back to the pool when it ends, so a decoding loop's tensor memory stays flat.</summary>
    public static unsafe void NextLogits(Gpt2Model model, int[] tokens, KvCache cache, float[] logits)
    {
        using var _ = GradMode.NoGrad();
        using var step = MemoryScope.Begin();
        var ids = Tensor.FromArray(tokens, 1, tokens.Length).To(model.Device);
        var last = model.Forward(ids, cache, lastPositionOnly: true);
        if (last.Count != logits.Length) throw new ArgumentException($"NextLogits: logits has {logits.Length} entries for a vocabulary of {last.Count}.");
        fixed (float* p = logits) last.CopyToHost(p);
    }
}
