using System.Text;
using Nabla.Text;

namespace Nabla.Cli.Runs;

/// <summary>Console-side helpers for language models; finding a model and its tokenizer is the library's
/// <see cref="Nabla.Models.Gpt2.Gpt2ModelFiles"/> and <see cref="TokenizerFiles"/>.</summary>
public static class LanguageModelFiles
{
    /// <summary>Turns ids into text as they arrive, holding back bytes of a character that is not complete yet.</summary>
    public sealed class StreamingDecoder(ITokenizer tokenizer)
    {
        private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();

        public string Next(int id)
        {
            if (tokenizer is not Gpt2Tokenizer bpe) return tokenizer.Decode([id]);
            var bytes = bpe.DecodeBytes([id]);
            var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
            int n = _utf8.GetChars(bytes, 0, bytes.Length, chars, 0, flush: false);
            return new string(chars, 0, n);
        }
    }
}
