using System.Diagnostics;
using System.Text.Json;
using Nabla.IO;
using Nabla.Models.Gpt2;

namespace Nabla.Tests.IO;

/// <summary>
/// A GGUF written by Nabla runs in llama.cpp itself: the tiny GPT-2 of Fixtures/hf_gpt2/base, exported at F32, is
/// loaded by llama.cpp's CPU library (npm's node-llama-cpp 3.21.1, installed by tests/data/fetch-llama-cpp.sh) through
/// bench/llama_cpp_peer.mjs, and must continue the prompt with the greedy tokens PyTorch computes; llama.cpp's
/// tokenizer, built from the file's tokenizer.ggml.* metadata, must split the prompt into Nabla's (and GPT-2's) ids.
/// </summary>
public sealed class GgufLlamaCppTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nabla-gguf-llama-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AFileWrittenByNablaGeneratesTheSameGreedyTokensInLlamaCpp()
    {
        var expected = SafeTensors.Load(TestData.Fixture("gguf/expected.safetensors"));
        int[] prompt = expected["prompt_ids"].ToIntArray(), greedy = expected["greedy_f32"].ToIntArray();
        var (model, tokenizer) = Gpt2ModelFiles.Load(TestData.Fixture("hf_gpt2/base"));
        var path = Path.Combine(_dir, "tiny.gguf");
        Gpt2Gguf.Save(model, tokenizer, path, GgmlType.F32);

        const string text = "The quick brown fox said: it's 2026, and the lazy dog's reply";
        using var answer = JsonDocument.Parse(RunPeer("greedy", path, JsonSerializer.Serialize(prompt), greedy.Length.ToString(), text));
        Assert.Equal(greedy, answer.RootElement.GetProperty("greedy").Deserialize<int[]>());
        Assert.Equal(prompt, answer.RootElement.GetProperty("tokens").Deserialize<int[]>());
        Assert.Equal(prompt, tokenizer.Encode(text));
    }

    /// <summary>Runs bench/llama_cpp_peer.mjs with node; fails with the fetch command when node-llama-cpp is missing.</summary>
    private static string RunPeer(params string[] arguments)
    {
        string script = Path.Combine(RepositoryRoot(), "bench", "llama_cpp_peer.mjs");
        var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["NABLA_TEST_DATA"] = TestData.Root;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // Only a guard against a hang: node and llama.cpp start slowly when other processes load the machine.
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("llama_cpp_peer.mjs did not finish within 10 minutes");
        }
        Assert.True(process.ExitCode == 0,
            $"llama_cpp_peer.mjs exited with {process.ExitCode}: {stderr.Result.Trim()} (node-llama-cpp comes from `bash tests/data/fetch-llama-cpp.sh`)");
        return stdout.Result.Trim();
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Nabla.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Nabla.slnx above {AppContext.BaseDirectory}");
    }
}
