using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Nabla.IO;

namespace Nabla.Training;

/// <summary>A complete checkpoint found on disk: its step and directory, and the newer ones passed over as damaged.</summary>
public sealed record RecoveredCheckpoint(int Step, string Directory, IReadOnlyList<string> Skipped);

/// <summary>
/// The checkpoints of a run, kept so that a crash at any instant — while saving, or while recovering from an
/// earlier crash — leaves at least one complete checkpoint. Each checkpoint is a directory
/// <c>checkpoints/step-NNNNNNNN</c> whose files are written into a <c>.tmp</c> directory first; a manifest
/// listing every file's size and SHA-256 is written last, then the directory is renamed into place (one atomic
/// rename), and only then are older checkpoints deleted (manifest first, so a half-deleted one reads as
/// incomplete). Recovery takes the newest directory whose manifest matches its files — a <c>.tmp</c> one
/// included, since its manifest is written only once its files are whole.
/// </summary>
public sealed class CheckpointStore(string runDirectory)
{
    public const string ManifestFile = "manifest.json";
    private const string Prefix = "step-";
    private const string TmpSuffix = ".tmp";

    public string Root { get; } = Path.Combine(runDirectory, "checkpoints");

    /// <summary>Test-only: called between the file operations with the name of the point reached, so that tests
    /// can simulate a crash there by throwing.</summary>
    internal Action<string>? FaultPoint { get; set; }

    private void Reached(string point) => FaultPoint?.Invoke(point);

    public string PathOf(int step) => Path.Combine(Root, Prefix + step.ToString("D8", CultureInfo.InvariantCulture));

    /// <summary>Writes a checkpoint for <paramref name="step"/>: <paramref name="writeFiles"/> fills the directory it is
    /// given; the manifest, the swap and the removal of older checkpoints follow.</summary>
    public string Save(int step, Action<string> writeFiles)
    {
        var final = PathOf(step);
        var tmp = final + TmpSuffix;
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        Reached("save: temporary directory created");
        writeFiles(tmp);
        Reached("save: files written");
        WriteManifest(tmp, step);
        Reached("save: manifest written");
        // A directory of this step from an earlier life of the run goes first; the complete .tmp covers a crash here.
        if (Directory.Exists(final)) Remove(final);
        Directory.Move(tmp, final);
        Reached("save: renamed into place");
        foreach (var old in Candidates().Where(c => c.Step < step)) Remove(old.Dir);
        return final;
    }

    /// <summary>
    /// The newest complete checkpoint (null when there is none and nothing but torn .tmp directories). Newer ones that are
    /// not complete are passed over — those whose manifest does not match their files are named in
    /// <see cref="RecoveredCheckpoint.Skipped"/>, since that is damage, not a crash; when checkpoint directories
    /// exist and none is complete this throws rather than restart from step 0. Leftovers (temporary directories,
    /// older and damaged checkpoints) are removed once a complete one is found, and a complete .tmp is renamed into place.
    /// </summary>
    public RecoveredCheckpoint? Recover()
    {
        if (!Directory.Exists(Root)) return null;
        var problems = new List<string>();
        var skipped = new List<string>();
        foreach (var (step, dir) in Newest())
        {
            if (Verify(dir, step) is { } problem)
            {
                // A torn .tmp, or a directory whose manifest went first on its way out, is what a crash leaves;
                // a manifest that does not match its files is damage worth reporting.
                if (dir.EndsWith(TmpSuffix, StringComparison.Ordinal)) continue;
                problems.Add(problem);
                if (File.Exists(Path.Combine(dir, ManifestFile))) skipped.Add(problem);
                continue;
            }
            foreach (var leftover in Directory.GetDirectories(Root).Where(d => d != dir)) Remove(leftover);
            Reached("recover: leftovers removed");
            var final = PathOf(step);
            if (dir != final)
            {
                Directory.Move(dir, final);
                Reached("recover: renamed into place");
            }
            return new RecoveredCheckpoint(step, final, skipped);
        }
        if (problems.Count > 0)
            throw new CheckpointException($"No complete checkpoint to resume from: {string.Join("; ", problems)}.");
        return null;
    }

    /// <summary>Whether the run has any checkpoint directory, complete or not.</summary>
    public bool Any() => Candidates().Any();

    /// <summary>Checkpoint directories, newest step first and, within a step, the renamed one before its .tmp.</summary>
    private IEnumerable<(int Step, string Dir)> Newest() =>
        Candidates().OrderByDescending(c => c.Step).ThenBy(c => c.Dir.EndsWith(TmpSuffix, StringComparison.Ordinal));

    private IEnumerable<(int Step, string Dir)> Candidates()
    {
        if (!Directory.Exists(Root)) yield break;
        foreach (var dir in Directory.GetDirectories(Root))
        {
            var name = Path.GetFileName(dir);
            if (name.EndsWith(TmpSuffix, StringComparison.Ordinal)) name = name[..^TmpSuffix.Length];
            if (name.StartsWith(Prefix, StringComparison.Ordinal) && int.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int step))
                yield return (step, dir);
        }
    }

    private static void WriteManifest(string dir, int step)
    {
        var files = new JsonArray();
        foreach (var path in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
            files.Add(new JsonObject { ["name"] = Path.GetFileName(path), ["size"] = new FileInfo(path).Length, ["sha256"] = Downloader.Hash(path) });
        AtomicFile.WriteAllText(Path.Combine(dir, ManifestFile), new JsonObject { ["step"] = step, ["files"] = files }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Null when the manifest is present and every file it lists has its size and hash; else what is wrong.</summary>
    public static string? Verify(string dir, int step)
    {
        var manifestPath = Path.Combine(dir, ManifestFile);
        if (!File.Exists(manifestPath)) return $"{dir}: incomplete (no {ManifestFile})";
        try
        {
            var manifest = JsonNode.Parse(BoundedFile.ReadAllText(manifestPath, BoundedFile.SmallFileLimit, "a checkpoint manifest")) as JsonObject ?? throw new JsonException("not an object");
            if (manifest["step"]?.GetValue<int>() != step) return $"{manifestPath}: the manifest is for another step";
            if (manifest["files"] is not JsonArray { Count: > 0 } files) return $"{manifestPath}: lists no files";
            foreach (var entry in files)
            {
                var name = entry?["name"]?.GetValue<string>() ?? throw new JsonException("a file without a name");
                if (Path.GetFileName(name) != name) return $"{manifestPath}: bad file name '{name}'";
                var path = Path.Combine(dir, name);
                if (!File.Exists(path)) return $"{path}: missing";
                long size = entry["size"]?.GetValue<long>() ?? throw new JsonException($"'{name}' without a size");
                if (new FileInfo(path).Length != size) return $"{path}: {new FileInfo(path).Length} bytes, the manifest says {size}";
                if (Downloader.Hash(path) != entry["sha256"]?.GetValue<string>()) return $"{path}: SHA-256 does not match the manifest (damaged)";
            }
            return null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or IOException)
        {
            return $"{manifestPath}: unreadable manifest ({e.Message})";
        }
    }

    /// <summary>Deletes a checkpoint directory, its manifest first so that a crash part-way leaves it visibly incomplete.</summary>
    private void Remove(string dir)
    {
        var manifest = Path.Combine(dir, ManifestFile);
        if (File.Exists(manifest))
        {
            File.Delete(manifest);
            Reached("remove: manifest deleted");
        }
        Directory.Delete(dir, recursive: true);
        Reached("remove: directory deleted");
    }
}
