using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Nabla.Bench;
using Nabla.Cli;
using Nabla.Cli.Runs;
using Nabla.Data;
using Nabla.IO;
using Nabla.Models;
using Nabla.Optim;
using Nabla.Text;
using Nabla.Training;
using Xunit.Abstractions;

namespace Nabla.Tests.Fuzz;

/// <summary>The fuzz test runs alone: it measures the engine's tensor memory, which other tests would disturb.</summary>
[CollectionDefinition("Fuzz", DisableParallelization = true)]
public sealed class FuzzCollection;

/// <summary>
/// Seeded mutations of a valid file of every format a user can hand to Nabla (bit flips, truncations, inserted
/// and deleted bytes, numbers in headers and JSON replaced by huge, negative or non-finite ones). Each mutated
/// file must load, or fail with ONE of the project's error types whose one-line message names the file, quickly
/// and without allocating more than a small bound. A failure prints the seed and mutation to reproduce it.
/// </summary>
[Collection("Fuzz")]
public sealed class FileFormatFuzzTests : IDisposable
{
    private const int MutationsPerFormat = 150;
    /// <summary>CPU time of the reading thread (wall-clock time would grow with other processes' load).</summary>
    private static readonly TimeSpan TimePerInput = TimeSpan.FromSeconds(2);
    private const long MemoryPerInput = 64L << 20;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-fuzz-" + Guid.NewGuid().ToString("N"));
    private readonly ITestOutputHelper _output;

    public FileFormatFuzzTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>One format: the file name it is read under, a valid file, and the reader to run on a path; for
    /// some (a run's metrics) a missing file is not an error.</summary>
    private sealed record Format(string FileName, Func<string, byte[]> MakeValid, Action<string> Read, bool MayBeMissing = false);

    private static readonly string[] FormatNames =
        ["safetensors", "optimizer", "token-shard", "csv", "preprocessor", "mlp-config", "char-vocab", "encoder.json", "vocab.bpe", "metrics.jsonl", "image", "gguf", "gguf-q4_0", "quantized-gpt2"];

    public static TheoryData<string> Formats() => new(FormatNames);

    private Format Make(string name)
    {
        switch (name)
        {
            case "safetensors":
                return new("model.safetensors", p => { SmallMlp().Save(p); return File.ReadAllBytes(p); }, p => SmallMlp().Load(p));
            case "optimizer":
                return new("optimizer.safetensors", p =>
                {
                    var (model, optimizer) = TrainedOneStep();
                    SafeTensors.Save(p, optimizer.StateDict());
                    return File.ReadAllBytes(p);
                }, p => TrainedOneStep().Optimizer.LoadStateDict(SafeTensors.Load(p), p));
            case "token-shard":
                return new("train_000000.bin", p =>
                {
                    TokenShard.Write(p, Enumerable.Range(0, 300).Select(i => i * 7 % 50).ToArray());
                    return File.ReadAllBytes(p);
                }, p => TokenBatchLoader.FromShards([p], batchSize: 2, sequenceLength: 8, shuffleSeed: 1, vocabularySize: 50));
            case "csv":
                return new("data.csv", _ => Encoding.UTF8.GetBytes(IrisLikeCsv), p =>
                {
                    var table = CsvTable.Read(p);
                    var (train, validation) = DataSplit.TrainValidation(table.Rows.Count, 0.2, 1);
                    var prep = TabularPreprocessor.Fit(table, "last", train);
                    prep.Transform(table, validation);
                });
            case "preprocessor":
                return new("preprocessor.json", _ =>
                {
                    var table = CsvTable.Parse(new StringReader(IrisLikeCsv), "iris", new CsvOptions());
                    return Encoding.UTF8.GetBytes(TabularPreprocessor.Fit(table, "last", Enumerable.Range(0, table.Rows.Count).ToList()).ToJson());
                }, p => TabularPreprocessor.Load(p));
            case "mlp-config":
                return new("config.json", _ => Encoding.UTF8.GetBytes(new MlpRunConfig { Csv = "data.csv", Target = "label" }.ToJson()),
                    p => MlpRunConfig.Load(p));
            case "char-vocab":
                return new("tokenizer.json", p => { CharTokenizer.FromText("the quick brown fox jumps over the lazy dog.\n").Save(p); return File.ReadAllBytes(p); },
                    p => CharTokenizer.Load(p));
            case "encoder.json":
                return new("encoder.json", p => TokenizerFile(p, "encoder.json"), p => Gpt2Tokenizer.FromFiles(p, BpePath("vocab.bpe")));
            case "vocab.bpe":
                return new("vocab.bpe", p => TokenizerFile(p, "vocab.bpe"), p => Gpt2Tokenizer.FromFiles(BpePath("encoder.json"), p));
            case "metrics.jsonl":
                return new("metrics.jsonl", _ => Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(1, 20).Select(step =>
                    $"{{\"step\":{step},\"loss\":{3.0 / step:R},\"lr\":0.001{(step % 5 == 0 ? $",\"val_loss\":{2.9 / step:R}" : "")}}}\n"))),
                    p => MetricsLog.Read(p), MayBeMissing: true);
            case "image":
                return new("image.png", _ =>
                {
                    using var image = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(8, 6);
                    for (int y = 0; y < 6; y++)
                        for (int x = 0; x < 8; x++) image[x, y] = new((byte)(x * 30), (byte)(y * 40), (byte)(x * y));
                    using var png = new MemoryStream();
                    SixLabors.ImageSharp.ImageExtensions.SaveAsPng(image, png);
                    return png.ToArray();
                }, p => ImageFile.Load(p, resize: 4));
            case "gguf" or "gguf-q4_0":
                // llama.cpp's gguf-py wrote these (tests/reference/make_gguf_fixture.py); the tokenizer travels inside.
                return new("model.gguf", _ => File.ReadAllBytes(TestData.Fixture(name == "gguf" ? "gguf/gpt2_f32.gguf" : "gguf/gpt2_q4_0.gguf")),
                    p => Nabla.Models.Gpt2.Gpt2ModelFiles.Load(p));
            case "quantized-gpt2":
                return new("model.safetensors", p =>
                {
                    var (model, tokenizer) = Nabla.Models.Gpt2.Gpt2ModelFiles.Load(TestData.Fixture("quant/fp32"));
                    Nabla.Quantization.Gpt2Quantization.Quantize(model, Nabla.Quantization.QuantizationFormat.Nf4, doubleQuantizeScales: true);
                    var saved = Path.Combine(_dir, "quantized");
                    Nabla.Quantization.Gpt2Quantization.Save(model, saved);
                    Directory.CreateDirectory(Path.Combine(_dir, "mutated"));
                    File.Copy(Path.Combine(saved, "config.json"), Path.Combine(_dir, "mutated", "config.json"), overwrite: true);
                    return File.ReadAllBytes(Path.Combine(saved, "model.safetensors"));
                }, p => Nabla.Quantization.Gpt2Quantization.Load(p));
            default:
                throw new ArgumentException(name);
        }
    }

    private const string IrisLikeCsv = """
        sepal_length,sepal_width,color,label
        5.1,3.5,red,setosa
        4.9,3.0,blue,setosa
        6.3,3.3,red,virginica
        5.8,2.7,green,virginica
        7.0,3.2,blue,versicolor
        6.4,3.2,red,versicolor
        5.0,3.6,green,setosa
        6.7,3.0,blue,virginica
        5.5,2.3,red,versicolor
        6.5,2.8,green,versicolor
        """;

    private static Mlp SmallMlp() => new(4, [8], 3, generator: new Generator(1));

    private static (Mlp Model, AdamW Optimizer) TrainedOneStep()
    {
        var model = SmallMlp();
        var optimizer = new AdamW(model.Parameters(), 1e-3f);
        var loss = F.CrossEntropy(model.Forward(Tensor.Randn(new Generator(2), 5, 4)), Tensor.FromArray([0, 1, 2, 0, 1]));
        loss.Backward();
        optimizer.Step();
        return (model, optimizer);
    }

    /// <summary>A small trained BPE tokenizer (a few hundred tokens) in the test's directory; returns the
    /// valid file <paramref name="name"/> (encoder.json or vocab.bpe), also copied to <paramref name="path"/>.</summary>
    private byte[] TokenizerFile(string path, string name)
    {
        if (!File.Exists(BpePath("encoder.json")))
            new BpeTrainer(300).Train(string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 20))).Save(Path.Combine(_dir, "bpe"));
        var bytes = File.ReadAllBytes(BpePath(name));
        File.WriteAllBytes(path, bytes);
        return bytes;
    }

    private string BpePath(string name) => Path.Combine(_dir, "bpe", name);

    [Theory]
    [MemberData(nameof(Formats))]
    public void MutatedFilesLoadOrFailWithOneLineNamingTheFile(string formatName)
    {
        var format = Make(formatName);
        var valid = format.MakeValid(Path.Combine(_dir, "valid-" + format.FileName));
        var path = Path.Combine(_dir, "mutated", format.FileName);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);

        File.WriteAllBytes(path, valid);
        Check(format, path, "the valid file", mustSucceed: true);

        var random = new Random(formatName.Aggregate(17, (h, c) => h * 31 + c));
        int failures = 0;
        for (int i = 0; i < MutationsPerFormat; i++)
        {
            var (mutated, how) = Mutate(valid, random);
            File.WriteAllBytes(path, mutated);
            failures += Check(format, path, $"mutation {i} ({how})", mustSucceed: false) ? 0 : 1;
        }
        _output.WriteLine($"{formatName}: {MutationsPerFormat} mutations, {failures} rejected cleanly, {MutationsPerFormat - failures} loaded");
    }

    /// <summary>Runs the reader; returns whether it succeeded. Fails the test on anything but success or one clean error.</summary>
    private bool Check(Format format, string path, string what, bool mustSucceed)
    {
        BufferPool.ResetPeak();
        long liveBefore = BufferPool.LiveBytes;
        long managedBefore = GC.GetAllocatedBytesForCurrentThread();
        Exception? error = null;
        double seconds = CpuClock.ThreadSeconds(() =>
        {
            try { format.Read(path); }
            catch (Exception e) { error = e; }
        });
        long managed = GC.GetAllocatedBytesForCurrentThread() - managedBefore;
        long native = BufferPool.PeakLiveBytes - liveBefore;
        string context = $"{format.FileName}, {what}";
        Assert.True(seconds < TimePerInput.TotalSeconds, $"{context}: took {seconds:F1} s of CPU time");
        Assert.True(managed < MemoryPerInput, $"{context}: allocated {managed >> 20} MiB of managed memory");
        Assert.True(native < MemoryPerInput, $"{context}: allocated {native >> 20} MiB of tensor memory");
        if (error == null) return true;
        Assert.False(mustSucceed, $"{context}: {error}");
        AssertClean(error, path, context);
        return false;
    }

    private static void AssertClean(Exception error, string path, string context)
    {
        bool projectError = error is CheckpointException or DataFormatException or TokenizerFileException or InputFileException or CliException;
        Assert.True(projectError, $"{context}: internal exception {error}");
        Assert.Contains(path, error.Message);
        Assert.False(error.Message.Contains('\n'), $"{context}: the message has several lines: {error.Message}");
        Assert.DoesNotContain("internal error", CliErrors.Describe(error));
    }

    /// <summary>One random damage to a file, described for the failure message.</summary>
    private static (byte[] Bytes, string How) Mutate(byte[] valid, Random random)
    {
        var bytes = valid.ToList();
        int At() => random.Next(bytes.Count + 1);
        switch (random.Next(7))
        {
            case 0:
            {
                int flips = 1 + random.Next(4);
                for (int k = 0; k < flips && bytes.Count > 0; k++) { int i = random.Next(bytes.Count); bytes[i] ^= (byte)(1 << random.Next(8)); }
                return (bytes.ToArray(), $"{flips} bit flips");
            }
            case 1:
            {
                int length = random.Next(bytes.Count);
                return (bytes.Take(length).ToArray(), $"truncated to {length} bytes");
            }
            case 2:
            {
                int at = At(), n = 1 + random.Next(16);
                var junk = new byte[n];
                random.NextBytes(junk);
                bytes.InsertRange(at, junk);
                return (bytes.ToArray(), $"{n} random bytes inserted at {at}");
            }
            case 3:
            {
                int at = random.Next(Math.Max(1, bytes.Count)), n = Math.Min(1 + random.Next(32), bytes.Count - at);
                bytes.RemoveRange(at, Math.Max(0, n));
                return (bytes.ToArray(), $"{n} bytes deleted at {at}");
            }
            case 4:
            {
                // A little-endian integer in the first bytes (binary headers: lengths, counts, magic) made huge or negative.
                int at = random.Next(Math.Max(1, Math.Min(bytes.Count - 8, 64)));
                long value = HugeIntegers[random.Next(HugeIntegers.Length)];
                var le = BitConverter.GetBytes(value);
                int width = random.Next(2) == 0 ? 4 : 8;
                for (int k = 0; k < width && at + k < bytes.Count; k++) bytes[at + k] = le[k];
                return (bytes.ToArray(), $"{width}-byte integer at {at} set to {value}");
            }
            case 5:
            {
                // A number written in the text (JSON, CSV, header) replaced by a huge, negative or non-finite one.
                var text = Encoding.Latin1.GetString(valid);
                var numbers = System.Text.RegularExpressions.Regex.Matches(text, @"-?\d+(\.\d+)?([eE][-+]?\d+)?");
                if (numbers.Count == 0) goto case 0;
                var match = numbers[random.Next(numbers.Count)];
                var replacement = HugeNumbersAsText[random.Next(HugeNumbersAsText.Length)];
                var result = text[..match.Index] + replacement + text[(match.Index + match.Length)..];
                return (Encoding.Latin1.GetBytes(result), $"number '{match.Value}' at {match.Index} replaced by {replacement}");
            }
            default:
            {
                int at = random.Next(Math.Max(1, bytes.Count)), n = Math.Min(1 + random.Next(64), bytes.Count - at);
                var chunk = bytes.GetRange(at, Math.Max(0, n));
                bytes.InsertRange(At(), chunk);
                return (bytes.ToArray(), $"{chunk.Count} bytes from {at} duplicated");
            }
        }
    }

    private static readonly long[] HugeIntegers = [int.MaxValue, int.MinValue, -1, uint.MaxValue, long.MaxValue, 1L << 40, 65536];
    private static readonly string[] HugeNumbersAsText =
        ["99999999999999999999999", "2147483647", "-2147483648", "4294967296", "-1", "0", "1e308", "1e999", "NaN", "-Infinity", "65536", "1000000000"];

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task DevicesDirectoriesFifosAndMissingFilesAreErrorsNamingThePath(string formatName)
    {
        var format = Make(formatName);
        format.MakeValid(Path.Combine(_dir, "valid-" + format.FileName)); // and the files it is read with
        var paths = new List<string> { "/dev/zero", _dir };
        if (!format.MayBeMissing) paths.Add(Path.Combine(_dir, "missing", format.FileName));
        if (OperatingSystem.IsLinux())
        {
            var fifo = Path.Combine(_dir, "fifo-" + format.FileName);
            Assert.Equal(0, MakeFifo(fifo, 0b110_100_100));
            paths.Add(fifo);
        }
        foreach (var path in paths)
        {
            var run = Task.Run(() => format.Read(path));
            Assert.True(await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(10))) == run, $"{formatName}: reading {path} hangs");
            var error = run.Exception?.InnerException;
            Assert.True(error != null, $"{formatName}: reading {path} succeeded");
            AssertClean(error!, path, $"{formatName} from {path}");
        }
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MakeFifo(string path, uint mode);
}
