using Nabla.Data;

namespace Nabla.Tests.Data;

/// <summary>A test that reads the real Fashion-MNIST from Debian's <c>dataset-fashion-mnist</c> package (installed by
/// .ci/run); skipped, saying how to install it, only where that directory is absent.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public const string Directory = "/usr/share/datasets/fashion-mnist";

    public FashionMnistFactAttribute()
    {
        if (IdxDataset.FashionMnist.Locate() == null)
            Skip = $"Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist (files in {Directory}).";
    }
}
