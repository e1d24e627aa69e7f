namespace Nabla.Tests;

/// <summary>Files the tests read: committed fixtures, and real datasets fetched by tests/data/fetch-test-data.sh.</summary>
public static class TestData
{
    /// <summary>The test data cache: NABLA_TEST_DATA, or ~/.cache/nabla-test-data.</summary>
    public static string Root => Environment.GetEnvironmentVariable("NABLA_TEST_DATA") is { Length: > 0 } dir
        ? dir
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "nabla-test-data");

    /// <summary>Path of a fetched data file; fails (not skips) with the command that fetches it when it is missing.</summary>
    public static string File(string relative)
    {
        var path = Path.Combine(Root, relative);
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"Test data {path} is missing: run `bash tests/data/fetch-test-data.sh` (or set NABLA_TEST_DATA).", path);
        return path;
    }

    /// <summary>Path of a committed fixture (tests/Nabla.Tests/Fixtures, written by tests/reference/*.py).</summary>
    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);
}
