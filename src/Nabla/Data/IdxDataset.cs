using Nabla.IO;

namespace Nabla.Data;

/// <summary>The training or the test part of a dataset.</summary>
public enum DatasetSplit { Train, Test }

/// <summary>Images (N, C, H, W) with Int32 class labels (N) and the classes' names.</summary>
public sealed record ImageClassificationData(Tensor Images, Tensor Labels, IReadOnlyList<string> Classes)
{
    public int Count => Images.Size(0);

    /// <summary>Splits off every <paramref name="every"/>-th image of each class (counting within the class, in
    /// the dataset's order) as a test set: a fixed split with the same class balance on both sides, for datasets
    /// that come without one.</summary>
    public (ImageClassificationData Train, ImageClassificationData Test) HoldOut(int every)
    {
        if (every < 2) throw new ArgumentOutOfRangeException(nameof(every), $"Hold out every n-th image with n ≥ 2, got {every}.");
        var seen = new int[Classes.Count];
        var isTest = Labels.ToIntArray().Select(label => ++seen[label] % every == 0).ToArray();
        return (Rows(Enumerable.Range(0, Count).Where(i => !isTest[i])), Rows(Enumerable.Range(0, Count).Where(i => isTest[i])));
    }

    /// <summary>The first <paramref name="perClass"/> images of each class (all of a class that has fewer), in the dataset's order.</summary>
    public ImageClassificationData FirstPerClass(int perClass)
    {
        var first = InFirstPerClass(perClass);
        return Rows(Enumerable.Range(0, Count).Where(i => first[i]));
    }

    /// <summary>The images <see cref="FirstPerClass"/> leaves out: a validation set disjoint from those training images.</summary>
    public ImageClassificationData AfterFirstPerClass(int perClass)
    {
        var first = InFirstPerClass(perClass);
        return Rows(Enumerable.Range(0, Count).Where(i => !first[i]));
    }

    private bool[] InFirstPerClass(int perClass)
    {
        if (perClass <= 0) throw new ArgumentOutOfRangeException(nameof(perClass), $"Keep at least one image per class, got {perClass}.");
        var kept = new int[Classes.Count];
        return Labels.ToIntArray().Select(label => kept[label]++ < perClass).ToArray();
    }

    private ImageClassificationData Rows(IEnumerable<int> rows)
    {
        var picked = rows.ToArray();
        if (picked.Length == 0) throw new ArgumentException($"The selection keeps none of the {Count} images.");
        var labels = Labels.ToIntArray();
        return new(Images.IndexSelect(0, Tensor.FromArray(picked)), Tensor.FromArray(picked.Select(i => labels[i]).ToArray()), Classes);
    }
}

/// <summary>
/// A dataset distributed as four IDX files, like MNIST and Fashion-MNIST: train/test images and labels. It loads
/// from a directory given explicitly, else from the download cache (<c>NABLA_DATA</c>/datasets/NAME, by default
/// ~/.cache/nabla/datasets/NAME), else from an offline copy installed by the system (Debian's
/// <c>dataset-fashion-mnist</c> puts Fashion-MNIST in /usr/share/datasets/fashion-mnist). Files may be gzipped
/// (NAME.gz, as distributed) or not. <see cref="DownloadAsync"/> fetches them from their official location, each
/// checked against its pinned SHA-256.
/// </summary>
public sealed class IdxDataset
{
    // (Before the datasets below: static fields initialise in order.)
    private static readonly string[] FileNames =
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 28×28 grey-scale photos of 10 kinds of clothing,
    /// 60,000 for training and 10,000 for testing. MIT licence.</summary>
    public static IdxDataset FashionMnist { get; } = new("fashion-mnist",
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
        ["3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
         "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"],
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        new Normalization([0.2860f], [0.3530f]),
        ["/usr/share/datasets/fashion-mnist"]);

    /// <summary>MNIST (LeCun, Cortes and Burges): 28×28 grey-scale handwritten digits, 60,000 + 10,000. The original
    /// site often refuses downloads, so PyTorch's mirror of the same files is tried next.</summary>
    public static IdxDataset Mnist { get; } = new("mnist",
        ["https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"],
        ["440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"],
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        new Normalization([0.1307f], [0.3081f]),
        []);

    public string Name { get; }
    public IReadOnlyList<string> Classes { get; }
    /// <summary>The per-channel mean and standard deviation of the training images (in [0, 1] units).</summary>
    public Normalization Statistics { get; }
    /// <summary>The four files (gzipped, as distributed) at the official location, with their SHA-256.</summary>
    public IReadOnlyList<RemoteFile> Files { get; }
    private readonly string[] _mirrors;
    private readonly string[] _offlineDirectories;

    /// <summary>Describes a dataset of four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
    /// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) such as KMNIST or EMNIST.</summary>
    /// <param name="mirrors">Base URLs ending in '/', the official one first; each is tried in turn.</param>
    /// <param name="sha256">The SHA-256 of the four gzipped files, in the order above.</param>
    /// <param name="statistics">Mean and standard deviation of the training images, per channel.</param>
    /// <param name="offlineDirectories">Where a system package installs the files, if anywhere.</param>
    public IdxDataset(string name, IReadOnlyList<string> mirrors, IReadOnlyList<string> sha256, IReadOnlyList<string> classes,
        Normalization statistics, IReadOnlyList<string>? offlineDirectories = null)
    {
        if (mirrors.Count == 0 || mirrors.Any(m => !m.EndsWith('/')))
            throw new ArgumentException($"{name}: give at least one base URL, each ending in '/'.");
        if (sha256.Count != FileNames.Length || sha256.Any(h => h.Length != 64 || !h.All(Uri.IsHexDigit)))
            throw new ArgumentException($"{name}: give the SHA-256 (64 hex digits) of each of the {FileNames.Length} files.");
        Name = name;
        _mirrors = mirrors.ToArray();
        Files = FileNames.Select((f, i) => new RemoteFile(f + ".gz", _mirrors[0] + f + ".gz", sha256[i].ToLowerInvariant())).ToArray();
        Classes = classes.ToArray();
        Statistics = statistics;
        _offlineDirectories = offlineDirectories?.ToArray() ?? [];
    }

    /// <summary>Where <see cref="DownloadAsync"/> puts the files: NABLA_DATA (or ~/.cache/nabla)/datasets/NAME.</summary>
    public string CacheDirectory => Path.Combine(Downloader.CacheRoot, "datasets", Name);

    /// <summary>The first directory that holds all four files: <paramref name="directory"/> if given (an error if
    /// it does not), else the cache, else an offline copy; null if none does.</summary>
    public string? Locate(string? directory = null)
    {
        if (directory != null)
        {
            var missing = FileNames.Where(f => FindFile(directory, f) == null).ToArray();
            if (missing.Length > 0)
                throw new DataFormatException($"{directory}: no {string.Join(", ", missing)} (or .gz) for {Name}.");
            return directory;
        }
        return new[] { CacheDirectory }.Concat(_offlineDirectories).FirstOrDefault(d => FileNames.All(f => FindFile(d, f) != null));
    }

    private static string? FindFile(string directory, string name) =>
        new[] { name + ".gz", name }.Select(n => Path.Combine(directory, n)).FirstOrDefault(File.Exists);

    /// <summary>Loads the training or the test split: images (N, 1, 28, 28) in [0, 1] and labels (N).</summary>
    public ImageClassificationData Load(DatasetSplit split, string? directory = null)
    {
        var found = Locate(directory) ?? throw new FileNotFoundException(
            $"{Name} is not on this machine: download it into {CacheDirectory} (IdxDataset.{nameof(DownloadAsync)})" +
            (_offlineDirectories.Length > 0 ? $", or install the system's copy (Debian: apt-get install dataset-{Name}, into {_offlineDirectories[0]})." : "."));
        int first = split == DatasetSplit.Train ? 0 : 2;
        var imagesPath = FindFile(found, FileNames[first])!;
        var labelsPath = FindFile(found, FileNames[first + 1])!;
        var images = Idx.ReadImages(imagesPath);
        var labels = Idx.ReadLabels(labelsPath);
        if (images.Size(0) != labels.Size(0))
            throw new DataFormatException($"{imagesPath} holds {images.Size(0)} images but {labelsPath} holds {labels.Size(0)} labels.");
        int bad = Array.FindIndex(labels.ToIntArray(), l => l >= Classes.Count);
        if (bad >= 0) throw new DataFormatException($"{labelsPath}: label {labels.ToIntArray()[bad]} of item {bad} is not one of the {Classes.Count} classes.");
        return new ImageClassificationData(images, labels, Classes);
    }

    /// <summary>Downloads the four files into <paramref name="directory"/> (default <see cref="CacheDirectory"/>),
    /// trying the official location first and then the mirrors, each file checked against its pinned SHA-256.
    /// Files already there with the right hash are kept. Returns the directory.</summary>
    public async Task<string> DownloadAsync(HttpClient http, string? directory = null, IProgress<(string File, long Done, long? Total)>? progress = null,
        CancellationToken cancel = default)
    {
        directory ??= CacheDirectory;
        foreach (var file in Files)
        {
            var failures = new List<string>();
            foreach (var mirror in _mirrors)
            {
                try
                {
                    var fileProgress = progress == null ? null : new Progress<(long Done, long? Total)>(p => progress.Report((file.Name, p.Done, p.Total)));
                    await Downloader.FetchAsync(file with { Url = mirror + file.Name }, directory, http, fileProgress, cancel);
                    failures.Clear();
                    break;
                }
                catch (DownloadException e) { failures.Add(e.Message); }
            }
            if (failures.Count > 0) throw new DownloadException($"{Name}: could not download {file.Name}: {string.Join(" / ", failures)}");
        }
        return directory;
    }
}
