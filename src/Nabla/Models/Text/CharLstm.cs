using Nabla.Autograd;
using Nabla.Models.Gpt2;
using Nabla.NN;

namespace Nabla.Models.Text;

/// <summary>
/// A character-level language model in the style of Karpathy's char-rnn: embedding → stacked LSTM → linear logits
/// over the next character. <see cref="Forward"/> scores (B, T) ids as (B, T, V) logits for training;
/// <see cref="Generate"/> samples by carrying the LSTM's state from step to step.
/// </summary>
public sealed class CharLstm : Module
{
    public int VocabularySize { get; }
    public int HiddenSize { get; }
    public int NumLayers { get; }

    public CharLstm(int vocabularySize, int embeddingDim = 64, int hiddenSize = 256, int numLayers = 2, float dropout = 0.1f)
    {
        VocabularySize = vocabularySize;
        HiddenSize = hiddenSize;
        NumLayers = numLayers;
        RegisterModule("embedding", new Embedding(vocabularySize, embeddingDim));
        RegisterModule("lstm", new LSTM(embeddingDim, hiddenSize, numLayers, batchFirst: true, dropout: numLayers > 1 ? dropout : 0f));
        RegisterModule("dropout", new Dropout(dropout));
        RegisterModule("head", new Linear(hiddenSize, vocabularySize));
    }

    private LSTM Lstm => (LSTM)GetSubmodule("lstm");

    /// <summary>Next-character logits (B, T, V) of ids (B, T), from zero initial states.</summary>
    public override Tensor Forward(Tensor ids) => Run(ids, null, null).Logits;

    private (Tensor Logits, Tensor Hidden, Tensor Cell) Run(Tensor ids, Tensor? h0, Tensor? c0)
    {
        var (output, hidden, cell) = Lstm.Forward(ForwardChild("embedding", ids), h0, c0); // output (B, T, H)
        return (ForwardChild("head", ForwardChild("dropout", output)), hidden, cell);
    }

    /// <summary>Mean next-character cross-entropy (nats) of logits (B, T, V) against targets (B, T).</summary>
    public static Tensor Loss(Tensor logits, Tensor targets) => Gpt2Model.Loss(logits, targets);

    /// <summary>
    /// <paramref name="count"/> characters after <paramref name="prompt"/> (at least one id), each drawn from the softmax of
    /// the logits divided by <paramref name="temperature"/> (0: the most likely), in eval mode and without a graph.
    /// </summary>
    public int[] Generate(IReadOnlyList<int> prompt, int count, float temperature, Generator generator)
    {
        if (prompt.Count == 0) throw new ArgumentException("CharLstm.Generate: the prompt needs at least one character.");
        bool wasTraining = Training;
        Eval();
        using var _ = GradMode.NoGrad();
        var options = new SamplingOptions { Temperature = temperature };
        var device = ((Embedding)GetSubmodule("embedding")).Weight.Device; // the ids go where the model is
        var (logits, hidden, cell) = Run(Tensor.FromArray(prompt.ToArray(), 1, prompt.Count).To(device), null, null);
        var generated = new int[count];
        for (int i = 0; i < count; i++)
        {
            var last = logits.Select(1, logits.Size(1) - 1).ToArray(); // (V) of the last step
            generated[i] = Sampler.Sample(last, options, generator);
            (logits, hidden, cell) = Run(Tensor.FromArray([generated[i]], 1, 1).To(device), hidden, cell);
        }
        Train(wasTraining);
        return generated;
    }

    protected override string Describe() => $"vocabulary {VocabularySize}, hidden {HiddenSize}, layers {NumLayers}";
}
