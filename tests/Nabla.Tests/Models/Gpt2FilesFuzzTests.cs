using System.Text;
using Nabla.Bench;
using Nabla.IO;
using Nabla.Models.Gpt2;
using Nabla.Text;
using Xunit.Abstractions;

namespace Nabla.Tests.Models;

/// <summary>
/// Seeded mutations (bytes overwritten, truncations, deletions, numbers made huge or negative) of the files a
/// GPT-2 directory is read from: tokenizer.json, config.json and model.safetensors of the hub-layout fixture, and
/// an llm.c .bin header. Each mutated input must load, or fail with one of the project's errors whose one-line
/// message starts with the file or directory, within a bound of CPU time. A failure names the seed and mutation.
/// </summary>
public sealed class Gpt2FilesFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int Mutations = 150;
    /// <summary>CPU time of the loading thread (wall-clock time would grow with other processes' load).</summary>
    private static readonly TimeSpan TimePerInput = TimeSpan.FromSeconds(2);
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-gpt2fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("tokenizer.json")]
    [InlineData("config.json")]
    [InlineData("model.safetensors")]
    [InlineData("llm.c")]
    public void MutatedFilesLoadOrFailCleanly(string format)
    {
        foreach (var file in Directory.GetFiles(TestData.Fixture("hf_gpt2/base")))
            File.Copy(file, Path.Combine(_dir, Path.GetFileName(file)));
        bool llmc = format == "llm.c";
        string target = Path.Combine(_dir, llmc ? "model.bin" : format);
        byte[] valid = File.ReadAllBytes(llmc ? TestData.Fixture("llmc/gpt2_tiny_fp32.bin") : target);
        // The llm.c payload is raw floats that load whatever they hold; its header is what must be checked.
        int region = llmc ? 32 : valid.Length;
        var random = new Random(format.Length * 7919 + 17);
        int loaded = 0, refused = 0;
        for (int mutation = 0; mutation < Mutations; mutation++)
        {
            var (bytes, description) = Mutate(valid, region, random);
            File.WriteAllBytes(target, bytes);
            double seconds = CpuClock.ThreadSeconds(() =>
            {
                try
                {
                    if (llmc) Gpt2Checkpoints.LoadLlmc(target);
                    else if (format == "tokenizer.json") TokenizerFiles.Load(_dir);
                    else Gpt2ModelFiles.Load(_dir);
                    loaded++;
                }
                catch (Exception e) when (e is CheckpointException or TokenizerFileException)
                {
                    Assert.True(e.Message.StartsWith(_dir, StringComparison.Ordinal) && !e.Message.Contains('\n'),
                        $"mutation {mutation} ({description}): the message does not name the file on one line: {e.Message}");
                    refused++;
                }
                catch (Exception e)
                {
                    Assert.Fail($"mutation {mutation} ({description}): {e.GetType().Name}: {e.Message}");
                }
            });
            Assert.True(seconds < TimePerInput.TotalSeconds, $"mutation {mutation} ({description}) took {seconds:F1} s of CPU time");
        }
        output.WriteLine($"{format}: {loaded} mutations loaded, {refused} refused with a clean error");
    }

    private static (byte[] Bytes, string Description) Mutate(byte[] valid, int region, Random random)
    {
        var bytes = (byte[])valid.Clone();
        int at = random.Next(region);
        switch (random.Next(5))
        {
            case 0:
                int count = 1 + random.Next(4);
                for (int i = 0; i < count; i++) bytes[random.Next(region)] = (byte)random.Next(256);
                return (bytes, $"{count} bytes overwritten");
            case 1:
                int length = random.Next(bytes.Length);
                return (bytes[..length], $"truncated to {length} bytes");
            case 2:
                int removed = 1 + random.Next(3);
                return ([.. bytes[..at], .. bytes[Math.Min(bytes.Length, at + removed)..]], $"{removed} bytes deleted at {at}");
            case 3:
                var number = Encoding.ASCII.GetBytes(random.Next(3) switch { 0 => "99999999999", 1 => "-7", _ => "1e308" });
                return ([.. bytes[..at], .. number, .. bytes[at..]], $"'{Encoding.ASCII.GetString(number)}' inserted at {at}");
            default:
                at = random.Next(Math.Max(1, region / 4)) * 4;
                if (at + 4 <= bytes.Length) BitConverter.GetBytes(random.Next(2) == 0 ? int.MaxValue : -1 - random.Next(1000)).CopyTo(bytes, at);
                return (bytes, $"int32 at {at} made extreme");
        }
    }
}
