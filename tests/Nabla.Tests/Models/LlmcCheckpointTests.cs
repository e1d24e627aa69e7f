using System.Buffers.Binary;
using Nabla.Autograd;
using Nabla.Bench;
using Nabla.IO;
using Nabla.Models.Gpt2;

namespace Nabla.Tests.Models;

/// <summary>
/// llm.c checkpoints written by tests/reference/make_llmc_fixture.py following llm.c's own writer
/// (train_gpt2.py's write_model): version 3 (float32) and version 5 (bfloat16) of one tiny random GPT-2, with
/// PyTorch's logits for the float32 weights and for the weights rounded to bfloat16.
/// </summary>
public sealed class LlmcCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-llmc-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly Lazy<Dictionary<string, Tensor>> Reference = new(() => SafeTensors.Load(TestData.Fixture("llmc/logits.safetensors")));

    private static float[] Logits(string file)
    {
        var model = Gpt2Checkpoints.LoadLlmc(TestData.Fixture("llmc/" + file));
        Assert.Equal(new Gpt2Config { VocabSize = 203, MaxSequenceLength = 40, Channels = 32, Layers = 2, Heads = 4 }, model.Config);
        using var _ = GradMode.NoGrad();
        return model.Forward(Reference.Value["tokens"]).ToArray();
    }

    private static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= tolerance, $"{what}: largest difference {worst} exceeds {tolerance}");
    }

    [Fact]
    public void Version3Float32GivesPyTorchLogits() =>
        AssertClose(Reference.Value["logits_fp32"].ToArray(), Logits("gpt2_tiny_fp32.bin"), 1e-4, "version 3 vs PyTorch");

    [Fact]
    public void Version5Bfloat16GivesPyTorchLogitsOfTheRoundedWeights()
    {
        var logits = Logits("gpt2_tiny_bf16.bin");
        // The same weights PyTorch rounded to bfloat16: float32 agreement.
        AssertClose(Reference.Value["logits_bf16"].ToArray(), logits, 1e-4, "version 5 vs PyTorch on the bfloat16 weights");
        // Against the float32 model: within what bfloat16's 8-bit mantissa allows (logits here are of order 1).
        AssertClose(Reference.Value["logits_fp32"].ToArray(), logits, 0.05, "version 5 vs PyTorch on the float32 weights");
    }

    [Fact]
    public void ATokenizerLargerThanTheModelIsRefusedNamingBoth()
    {
        var model = TestData.Fixture("llmc/gpt2_tiny_fp32.bin");
        var tokenizer = TestData.Fixture("hf_gpt2/base");
        var error = Assert.Throws<CheckpointException>(() => Gpt2ModelFiles.Load(model, tokenizer)).Message;
        Assert.Equal($"{model}: the tokenizer in {tokenizer} has 335 tokens, but the model only 203.", error);
    }

    private string WithHeader(int length, params (int Index, int Value)[] fields)
    {
        var bytes = File.ReadAllBytes(TestData.Fixture("llmc/gpt2_tiny_fp32.bin"));
        foreach (var (index, value) in fields) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * index), value);
        var path = Path.Combine(_dir, "bad.bin");
        File.WriteAllBytes(path, bytes[..Math.Min(length, bytes.Length)]);
        return path;
    }

    public static TheoryData<int, int, int, string> BadHeaders => new()
    {
        // header index, value, file length (0: the whole file), what the message says
        { 1, 4, 0, "llm.c checkpoint version 4 is not supported" },
        { 2, int.MaxValue, 0, "n_positions = 2147483647 is out of range" },
        { 3, -1, 0, "vocab_size = -1 is out of range" },
        { 4, 1 << 30, 0, "n_layer = 1073741824 is out of range" },
        { 5, 0, 0, "n_head = 0 is out of range" },
        { 6, 1 << 20, 0, "n_embd = 1048576 is out of range" },
        { 7, 100, 0, "padded vocabulary 100 is outside 203" },
        { 7, int.MaxValue, 0, "padded vocabulary 2147483647 is outside" },
        { 6, 8192, 0, "a 2-layer, 8192-channel llm.c model (version 3) needs" }, // every size in range, but not what the file holds
        { 4, 3, 0, "bytes, but a 3-layer, 32-channel llm.c model (version 3) needs" },
        { 1, 5, 0, "needs" },              // a float32 file that claims bfloat16: the size gives it away
        { 0, 0, 100, "truncated llm.c checkpoint (100 bytes" },
    };

    [Theory]
    [MemberData(nameof(BadHeaders))]
    public void EveryHeaderFieldIsCheckedAgainstLimitsAndTheFileSizeBeforeAllocating(int index, int value, int length, string message)
    {
        var path = length > 0 ? WithHeader(length) : WithHeader(int.MaxValue, (index, value));
        var error = "";
        double seconds = CpuClock.ThreadSeconds(() => error = Assert.Throws<CheckpointException>(() => Gpt2Checkpoints.LoadLlmc(path)).Message);
        Assert.True(seconds < 2, $"{seconds:F1} s of CPU time to refuse {path}");
        Assert.StartsWith(path + ": ", error);
        Assert.Contains(message, error);
    }

    [Fact]
    public void A100ByteFileWithHugeSizesIsRefusedAtOnce()
    {
        // Sizes whose byte count overflows 64-bit arithmetic: L·12·C² with L = 1024, C = 65536 is 5·10¹³ values.
        var path = WithHeader(1024, (2, Gpt2Config.MaxPositions), (3, Gpt2Config.MaxVocabSize), (4, Gpt2Config.MaxLayers), (5, 64),
            (6, Gpt2Config.MaxChannels), (7, Gpt2Config.MaxVocabSize));
        var error = "";
        double seconds = CpuClock.ThreadSeconds(() => error = Assert.Throws<CheckpointException>(() => Gpt2Checkpoints.LoadLlmc(path)).Message);
        Assert.True(seconds < 2, $"{seconds:F1} s of CPU time");
        Assert.StartsWith(path + ": ", error);
    }
}
