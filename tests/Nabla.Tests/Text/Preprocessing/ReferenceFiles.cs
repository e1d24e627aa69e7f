using System.IO.Compression;

namespace Nabla.Tests.Text.Preprocessing;

/// <summary>The tab-separated reference files of tests/reference/make_text_preprocessing_fixtures.py.</summary>
internal static class ReferenceFiles
{
    public static List<string[]> Rows(string name)
    {
        using var file = File.OpenRead(TestData.Fixture(Path.Combine("text", name)));
        using var reader = new StreamReader(name.EndsWith(".gz") ? new GZipStream(file, CompressionMode.Decompress) : file);
        var rows = new List<string[]>();
        while (reader.ReadLine() is { } line) rows.Add(line.Split('\t'));
        return rows;
    }
}
