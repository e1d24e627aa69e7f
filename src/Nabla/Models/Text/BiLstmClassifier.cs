using Nabla.IO;
using Nabla.NN;
using Nabla.Text.Preprocessing;

namespace Nabla.Models.Text;

/// <summary>
/// A sequence classifier over word ids: embedding → bidirectional LSTM → the last layer's final hidden states of both
/// directions (the forward one after the last word, the backward one after the first), concatenated → linear logits.
/// Input is (B, T) int32 ids right-padded with <see cref="WordVocabulary.PadId"/>; each row's length is its count of
/// non-padding ids, and the LSTM runs with those lengths (packed-sequence semantics), so padding changes nothing.
/// </summary>
public sealed class BiLstmClassifier : Module
{
    public int VocabularySize { get; }
    public int Classes { get; }
    public int EmbeddingDim { get; }
    public int HiddenSize { get; }
    public int NumLayers { get; }

    public BiLstmClassifier(int vocabularySize, int classes, int embeddingDim = 100, int hiddenSize = 128, int numLayers = 1, float dropout = 0.3f)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        VocabularySize = vocabularySize;
        Classes = classes;
        EmbeddingDim = embeddingDim;
        HiddenSize = hiddenSize;
        NumLayers = numLayers;
        RegisterModule("embedding", new Embedding(vocabularySize, embeddingDim));
        RegisterModule("dropout", new Dropout(dropout));
        RegisterModule("lstm", new LSTM(embeddingDim, hiddenSize, numLayers, batchFirst: true, dropout: numLayers > 1 ? dropout : 0f, bidirectional: true));
        RegisterModule("head", new Linear(2 * hiddenSize, classes));
    }

    private Embedding EmbeddingLayer => (Embedding)GetSubmodule("embedding");
    private LSTM Lstm => (LSTM)GetSubmodule("lstm");

    /// <summary>Logits (B, classes) of ids (B, T).</summary>
    public override Tensor Forward(Tensor ids)
    {
        if (ids.Rank != 2) throw new ArgumentException($"BiLstmClassifier: ids must be (B, T), got {ids.ShapeString}.");
        int b = ids.Size(0), t = ids.Size(1);
        var flat = ids.ToIntArray();
        var lengths = new int[b];
        for (int row = 0; row < b; row++)
            for (int step = 0; step < t && flat[row * t + step] != WordVocabulary.PadId; step++) lengths[row]++;
        if (lengths.Contains(0)) throw new ArgumentException("BiLstmClassifier: a row of ids is empty or starts with padding (rows must be right-padded and hold at least one word).");
        var x = ForwardChild("dropout", ForwardChild("embedding", ids)); // (B, T, E)
        var (_, hidden, _) = Lstm.Forward(x, null, null, lengths);      // hidden: (layers·2, B, H)
        int last = 2 * (NumLayers - 1);
        var features = Tensor.Concat([hidden.Select(0, last), hidden.Select(0, last + 1)], 1); // (B, 2H)
        return ForwardChild("head", ForwardChild("dropout", features));
    }

    /// <summary>
    /// Copies pretrained word vectors into the embedding: a text file of "word v1 v2 ... vD" lines (GloVe; a word2vec
    /// text file's first "count dim" line is skipped), D = <see cref="EmbeddingDim"/>. Words of the vocabulary the file
    /// lacks keep their random vectors. Returns how many vocabulary words were found.
    /// </summary>
    public int LoadPretrainedEmbeddings(string path, WordVocabulary vocabulary)
    {
        var weight = EmbeddingLayer.Weight;
        var values = weight.ToArray();
        int found = 0, lineNumber = 0;
        using var reader = new StreamReader(BoundedFile.OpenRead(path, "a word-vector text file"));
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0 || (lineNumber == 1 && fields.Length == 2)) continue;
            if (fields.Length != EmbeddingDim + 1)
                throw new InputFileException($"{path}:{lineNumber}: {fields.Length - 1} numbers after the word, expected {EmbeddingDim} (the embedding size).");
            int id = vocabulary.IdOf(fields[0]);
            if (id == WordVocabulary.UnknownId && fields[0] != WordVocabulary.Unknown) continue;
            for (int k = 0; k < EmbeddingDim; k++)
                if (!float.TryParse(fields[k + 1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[id * EmbeddingDim + k]))
                    throw new InputFileException($"{path}:{lineNumber}: '{fields[k + 1]}' is not a number.");
            found++;
        }
        using (Autograd.GradMode.NoGrad()) weight.CopyFrom(Tensor.FromArray(values, VocabularySize, EmbeddingDim));
        return found;
    }

    protected override string Describe() => $"vocabulary {VocabularySize}, embedding {EmbeddingDim}, hidden {HiddenSize}×2, layers {NumLayers}, classes {Classes}";
}
