using Nabla.IO;

namespace Nabla.Tests.IO;

/// <summary>BFloat16/Float16 tensors against a file PyTorch wrote (tests/reference/make_half_precision_fixture.py,
/// half_precision.safetensors): kept as stored when asked, widened exactly, rounded from float32 as torch rounds,
/// viewed, saved, and refused by ops with a line that says what to do.</summary>
public sealed class HalfPrecisionTests : IDisposable
{
    private static readonly string Fixture = TestData.Fixture("half_precision.safetensors");
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-half-tests-" + Guid.NewGuid().ToString("N"));

    public HalfPrecisionTests() => Directory.CreateDirectory(_dir);
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The stored 16-bit patterns of one tensor of the fixture, read as bytes (no conversion involved).</summary>
    private static ushort[] StoredBits(string path, string name)
    {
        var (infos, _, dataStart) = SafeTensors.ReadHeader(path);
        var bytes = SafeTensors.ReadBytes(path, infos.Single(i => i.Name == name), dataStart);
        return Enumerable.Range(0, bytes.Length / 2).Select(i => BitConverter.ToUInt16(bytes, 2 * i)).ToArray();
    }

    private static void AssertSameFloats(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"element {i}: expected {expected[i]:R}, got {actual[i]:R}");
    }

    [Theory]
    [InlineData("values.bf16", DType.BFloat16)]
    [InlineData("values.f16", DType.Float16)]
    public void KeepsStoredValuesAndWidensThemExactly(string name, DType dtype)
    {
        var kept = SafeTensors.Load(Fixture, keepHalfPrecision: true);
        var t = kept[name];
        Assert.Equal(dtype, t.DType);
        Assert.Equal([20, 11], t.Shape.ToArray());
        Assert.Equal(2L * t.Count, t.Storage.ByteLength); // half the memory of float32, no hidden copy
        Assert.Equal(StoredBits(Fixture, name), t.ToHalfPrecisionBits());
        var torchWidened = kept[name + ".f32"].ToArray();
        Assert.Equal(DType.Float32, kept[name + ".f32"].DType);
        AssertSameFloats(torchWidened, t.To(DType.Float32).ToArray());
        AssertSameFloats(torchWidened, t.ToArray());
        // Without the option the reader upcasts, as before: the same values as float32.
        var upcast = SafeTensors.Load(Fixture)[name];
        Assert.Equal(DType.Float32, upcast.DType);
        AssertSameFloats(torchWidened, upcast.ToArray());
    }

    [Theory]
    [InlineData("values.bf16", DType.BFloat16)]
    [InlineData("values.f16", DType.Float16)]
    public void RoundsFloat32AsPyTorchDoes(string name, DType dtype)
    {
        var values = SafeTensors.Load(Fixture)["values"];
        var narrowed = values.To(dtype);
        Assert.Equal(dtype, narrowed.DType);
        Assert.Equal(values.Shape.ToArray(), narrowed.Shape.ToArray());
        var expected = StoredBits(Fixture, name);
        var actual = narrowed.ToHalfPrecisionBits();
        var source = values.ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            // A NaN's bits are the implementation's choice (torch's vectorised path writes 0xFFFF, c10::BFloat16 0x7FC0): any NaN will do.
            if (float.IsNaN(source[i])) Assert.True(float.IsNaN(narrowed.ToArray()[i]), $"element {i}: NaN became 0x{actual[i]:X4}");
            else Assert.True(expected[i] == actual[i], $"{source[i]:R}: torch stores 0x{expected[i]:X4}, Nabla 0x{actual[i]:X4}");
        }
    }

    [Fact]
    public void ViewsOfAHalfTensorReadTheRightElements()
    {
        var kept = SafeTensors.Load(Fixture, keepHalfPrecision: true);
        var permuted = kept["cube.bf16"].Permute(2, 0, 1);
        Assert.Equal(DType.BFloat16, permuted.DType);
        Assert.False(permuted.IsContiguous);
        var torchPermuted = kept["cube.permuted.f32"].ToArray();
        AssertSameFloats(torchPermuted, permuted.To(DType.Float32).ToArray());
        var copy = permuted.Contiguous();
        Assert.Equal(DType.BFloat16, copy.DType);
        Assert.True(copy.IsContiguous);
        AssertSameFloats(torchPermuted, copy.ToArray());
        AssertSameFloats(torchPermuted.Skip(3).Take(3).ToArray(), permuted.Select(0, 0).Select(0, 1).To(DType.Float32).ToArray());
        Assert.Equal(-3.140625f, kept["scalar.f16"].To(DType.Float32).Item());
        Assert.Equal([0, 3], kept["empty.bf16"].To(DType.Float32).Shape.ToArray());
    }

    [Fact]
    public void SavesHalfTensorsInTheirOwnDtype()
    {
        var kept = SafeTensors.Load(Fixture, keepHalfPrecision: true);
        var path = Path.Combine(_dir, "half.safetensors");
        SafeTensors.Save(path, [new("b", kept["values.bf16"]), new("f", kept["values.f16"]), new("p", kept["cube.bf16"].Permute(2, 0, 1)), new("s", kept["scalar.f16"])]);
        var dtypes = SafeTensors.ReadHeader(path).Tensors.ToDictionary(i => i.Name, i => i.DType);
        Assert.Equal(new Dictionary<string, string> { ["b"] = "BF16", ["f"] = "F16", ["p"] = "BF16", ["s"] = "F16" }, dtypes);
        Assert.Equal(StoredBits(Fixture, "values.bf16"), StoredBits(path, "b"));
        Assert.Equal(StoredBits(Fixture, "values.f16"), StoredBits(path, "f"));
        Assert.Equal(StoredBits(Fixture, "scalar.f16"), StoredBits(path, "s"));
        AssertSameFloats(kept["cube.permuted.f32"].ToArray(), SafeTensors.Load(path)["p"].ToArray());
    }

    [Fact]
    public void ComputingOnAHalfTensorSaysToConvertIt()
    {
        var t = SafeTensors.Load(Fixture, keepHalfPrecision: true)["values.f16"];
        var e = Assert.Throws<InvalidOperationException>(() => t.MatMul(Tensor.Ones(11, 2)));
        Assert.Contains("MatMul", e.Message);
        Assert.Contains("Float16", e.Message);
        Assert.Contains("To(DType.Float32)", e.Message);
        t.Name = "values.f16";
        var element = Assert.Throws<NotSupportedException>(() => t[0, 0]);
        Assert.Contains("'values.f16'", element.Message);
        Assert.Contains("To(DType.Float32)", element.Message);
    }
}
