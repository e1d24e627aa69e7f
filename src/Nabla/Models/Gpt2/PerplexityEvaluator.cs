using Nabla.Autograd;

namespace Nabla.Models.Gpt2;

/// <summary>
/// Perplexity of a text under a language model, with a sliding window: windows of <c>window</c> tokens start
/// every <c>stride</c> tokens, and each scores only the positions the previous windows did not, so every
/// token after the first is predicted exactly once, with up to window − stride tokens of context before it.
/// </summary>
public static class PerplexityEvaluator
{
    public readonly record struct Result(long Tokens, double Loss)
    {
        /// <summary>exp(mean negative log-likelihood per token).</summary>
        public double Perplexity => Math.Exp(Loss);
    }

    public static Result Evaluate(Gpt2Model model, IReadOnlyList<int> tokens, int window, int stride)
    {
        if (tokens.Count < 2) throw new ArgumentException("Perplexity needs at least two tokens.");
        if (window < 2 || window > model.Config.MaxSequenceLength + 1) throw new ArgumentException($"The window must be 2..{model.Config.MaxSequenceLength + 1} tokens.");
        if (stride < 1 || stride > window) throw new ArgumentException("The stride must be between 1 and the window.");
        model.Eval();
        using var _ = GradMode.NoGrad();
        double nll = 0;
        long scored = 0;
        int scoredUpTo = 1; // absolute positions below this have been predicted (position 0 never is)
        for (int begin = 0; scoredUpTo < tokens.Count; begin += stride)
        {
            int end = Math.Min(begin + window, tokens.Count);
            int length = end - begin - 1;
            var x = new int[length];
            var y = new int[length];
            for (int j = 0; j < length; j++)
            {
                int target = begin + 1 + j;
                x[j] = tokens[begin + j];
                y[j] = target >= scoredUpTo ? tokens[target] : -100;
            }
            var logits = model.Forward(Tensor.FromArray(x, 1, length).To(model.Device));
            nll += F.CrossEntropy(logits.Reshape(length, -1), Tensor.FromArray(y).To(model.Device), Reduction.Sum).Item();
            scored += end - scoredUpTo;
            scoredUpTo = end;
        }
        model.Train();
        return new Result(scored, nll / scored);
    }
}
