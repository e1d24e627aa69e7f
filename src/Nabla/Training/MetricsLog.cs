using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.Data;
using Nabla.IO;

namespace Nabla.Training;

/// <summary>
/// A run's metrics.jsonl: one JSON object per line, each with a "step". Lines are appended as training goes;
/// a crash can tear the last one, and the steps after the last checkpoint are run again after a resume, so
/// <see cref="Repair"/> rewrites the file (atomically) without a torn last line and without the lines of
/// steps that will be redone.
/// </summary>
public sealed class MetricsLog(string path)
{
    public string Path { get; } = path;

    public void Append(JsonObject record) => File.AppendAllText(Path, record.ToJsonString() + "\n");

    public void Clear()
    {
        if (File.Exists(Path)) File.Delete(Path);
    }

    /// <summary>The records, oldest first. A last line without its newline (torn by a crash) is left out; a bad
    /// complete line is an error naming the file and line.</summary>
    public static List<JsonObject> Read(string path)
    {
        var records = new List<JsonObject>();
        if (!System.IO.Path.Exists(path)) return records;
        var lines = BoundedFile.ReadAllText(path, BoundedFile.TextFileLimit, "a metrics log").Split('\n');
        // The text after the last newline is a line whose append did not finish: dropped whatever it holds.
        for (int i = 0; i < lines.Length - 1; i++)
        {
            if (lines[i].Length == 0) continue;
            try
            {
                if (JsonNode.Parse(lines[i], documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false }) is JsonObject { } o && o["step"] is JsonValue step && step.TryGetValue<int>(out _))
                {
                    records.Add(o);
                    continue;
                }
            }
            catch (JsonException) { }
            throw new DataFormatException($"{path}:{i + 1}: not a metrics record (a JSON object with a \"step\").");
        }
        return records;
    }

    /// <summary>Keeps the complete records of steps up to <paramref name="step"/> (all others will be written again).</summary>
    public void Repair(int step)
    {
        if (!File.Exists(Path)) return;
        var kept = Read(Path).Where(r => r["step"]!.GetValue<int>() <= step);
        AtomicFile.WriteAllText(Path, string.Concat(kept.Select(r => r.ToJsonString() + "\n")));
    }
}
