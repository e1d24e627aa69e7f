using System.Text.Json.Nodes;
using Nabla.Models.Gpt2;
using Nabla.Tests.Parity;

namespace Nabla.Tests.Models;

/// <summary>
/// Top-k / top-p sampling draws from the right distribution: with a fixed seed, the frequencies of many samples
/// must fit the exact truncated, renormalised distribution that tests/reference/make_attention_sampling_fixture.py
/// computed with PyTorch (logits / temperature, the k largest, the smallest nucleus of probability p). A token
/// outside the kept set must never be drawn; the kept ones are judged by Pearson's chi-square statistic.
/// </summary>
public class SamplingDistributionTests
{
    private const string File = "sampling_cases.safetensors";
    private const int Samples = 60_000;

    public static TheoryData<string> Cases() =>
        new(ParityFixture.Get(File).Metadata.Keys.Where(k => k is not ("source" or "torch")).Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Cases))]
    public void SampleFrequenciesFitTheTruncatedDistribution(string name)
    {
        var fixture = ParityFixture.Get(File);
        var settings = JsonNode.Parse(fixture.Metadata[name])!;
        var options = new SamplingOptions
        {
            Temperature = settings["temperature"]!.GetValue<float>(),
            TopK = settings["top_k"]!.GetValue<int>(),
            TopP = settings["top_p"]!.GetValue<float>(),
        };
        float[] logits = fixture[$"{name}/logits"].ToArray();
        float[] expected = fixture[$"{name}/probs"].ToArray();

        var counts = new int[logits.Length];
        var generator = new Generator(2024);
        for (int i = 0; i < Samples; i++) counts[Sampler.Sample(logits, options, generator)]++;

        double chiSquare = 0;
        int kept = 0;
        for (int token = 0; token < logits.Length; token++)
        {
            if (expected[token] == 0)
            {
                Assert.True(counts[token] == 0, $"token {token} lies outside the truncated distribution but was drawn {counts[token]} times");
                continue;
            }
            kept++;
            double mean = expected[token] * Samples;
            chiSquare += (counts[token] - mean) * (counts[token] - mean) / mean;
        }
        // For k − 1 degrees of freedom the statistic has mean k − 1 and standard deviation √(2(k − 1)); eight standard
        // deviations above the mean is far beyond chance, while a wrong temperature or cut moves it by thousands.
        int freedom = Math.Max(1, kept - 1);
        double limit = freedom + 8 * Math.Sqrt(2.0 * freedom);
        Assert.True(chiSquare <= limit, $"{name}: chi-square {chiSquare:F1} over {kept} kept tokens exceeds {limit:F1}");
    }
}
