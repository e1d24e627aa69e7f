namespace Nabla.Text;

/// <summary>
/// Turns text into token ids and back: what language-model training and generation need from a tokenizer.
/// Ids run from 0 to <see cref="VocabSize"/> − 1, the rows of the model's embedding table.
/// </summary>
public interface ITokenizer
{
    /// <summary>Number of distinct token ids (the model's vocabulary dimension V).</summary>
    int VocabSize { get; }

    /// <summary>The token ids of <paramref name="text"/>.</summary>
    int[] Encode(string text);

    /// <summary>The text of a sequence of token ids; throws when an id is outside [0, <see cref="VocabSize"/>).</summary>
    string Decode(IEnumerable<int> ids);
}
