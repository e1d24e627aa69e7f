using System.Buffers.Binary;
using System.Text;
using Nabla.IO;
using Nabla.NN;

namespace Nabla.Tests.IO;

/// <summary>safetensors: a round trip, and every kind of broken file failing with a CheckpointException that
/// names the file and, where there is one, the tensor.</summary>
public sealed class SafeTensorsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nabla-safetensors-tests-" + Guid.NewGuid().ToString("N"));

    public SafeTensorsTests() => Directory.CreateDirectory(_dir);
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>Writes a file byte by byte: 8-byte length (or <paramref name="declaredLength"/>), header, data.</summary>
    private string Raw(string name, string header, byte[]? data = null, ulong? declaredLength = null)
    {
        var path = PathOf(name);
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data?.CopyTo(bytes, 8 + h.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static CheckpointException Fails(string path, params string[] mentions)
    {
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Load(path));
        Assert.Contains(path, e.Message);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
        return e;
    }

    [Fact]
    public void RoundTripKeepsValuesShapesDtypesOrderAndMetadata()
    {
        var path = PathOf("round.safetensors");
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("w", Tensor.Randn(new Generator(1), 2, 3)),
            new("idx", Tensor.FromArray(new[] { 5, -7, int.MaxValue, 0 })),
            new("scalar", Tensor.Scalar(-0.5f)),
            new("empty", Tensor.Zeros(0, 5)),
            new("transposed", Tensor.Arange(6).Reshape(2, 3).T),
        };
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode" });
        var loaded = SafeTensors.Load(path, out var meta);
        Assert.Equal("pt", meta["format"]);
        Assert.Equal("ünïcode", meta["note"]);
        foreach (var (name, t) in tensors)
        {
            var l = loaded[name];
            Assert.Equal(t.DType, l.DType);
            Assert.Equal(t.Shape.ToArray(), l.Shape.ToArray());
            if (t.DType == DType.Int32) Assert.Equal(t.ToIntArray(), l.ToIntArray());
            else Assert.Equal(t.ToArray(), l.ToArray());
        }
        var (infos, _, dataStart) = SafeTensors.ReadHeader(path);
        Assert.Equal(tensors.Select(t => t.Key), infos.Select(i => i.Name));
        Assert.Equal(0, dataStart % 8);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp")); // the atomic write left nothing behind
    }

    [Fact]
    public void ReadsOtherDtypesAsFloat32OrInt32()
    {
        var data = new byte[8 + 2 + 8];
        BinaryPrimitives.WriteDoubleLittleEndian(data, -1.5);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(8), 0x3FC0); // bf16 1.5
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(10), -3);
        var path = Raw("dtypes.safetensors",
            """{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[],"data_offsets":[8,10]},"c":{"dtype":"I64","shape":[1],"data_offsets":[10,18]}}""", data);
        var t = SafeTensors.Load(path);
        Assert.Equal(-1.5f, t["a"].Item());
        Assert.Equal(1.5f, t["b"].Item());
        Assert.Equal(DType.Int32, t["c"].DType);
        Assert.Equal(-3, t["c"].ToIntArray()[0]);
    }

    [Fact]
    public void TruncatedData() => Fails(
        Raw("trunc.safetensors", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", new byte[12]),
        "'b'", "truncated");

    [Fact]
    public void TooShortForTheHeaderLength()
    {
        var path = PathOf("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Fails(path, "3 bytes");
    }

    [Fact]
    public void HeaderLengthLargerThanTheFile() =>
        Fails(Raw("hlen.safetensors", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4], declaredLength: 1UL << 40), "header length");

    [Fact]
    public void InvalidJson() => Fails(Raw("json.safetensors", """{"a": {"dtype": "F32", "shape": [1], """), "JSON");

    [Fact]
    public void HeaderThatIsNotAnObject() => Fails(Raw("array.safetensors", "[1, 2, 3]"), "not a JSON object");

    [Fact]
    public void OffsetsOutOfRange() =>
        Fails(Raw("range.safetensors", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[8]), "'w'", "[4, 12)");

    [Fact]
    public void NegativeOrReversedOffsets()
    {
        Fails(Raw("neg.safetensors", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", new byte[8]), "'w'");
        Fails(Raw("rev.safetensors", """{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}""", new byte[8]), "'w'");
    }

    [Fact]
    public void ByteCountThatDoesNotMatchTheShape() =>
        Fails(Raw("count.safetensors", """{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}""", new byte[24]), "'w'", "20 bytes", "[2, 3]", "24");

    [Fact]
    public void MalformedEntries()
    {
        Fails(Raw("dtype.safetensors", """{"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}""", new byte[1]), "'w'", "F8");
        Fails(Raw("nodtype.safetensors", """{"w":{"shape":[1],"data_offsets":[0,4]}}""", new byte[4]), "'w'", "dtype");
        Fails(Raw("noshape.safetensors", """{"w":{"dtype":"F32","data_offsets":[0,4]}}""", new byte[4]), "'w'", "shape");
        Fails(Raw("negshape.safetensors", """{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", new byte[4]), "'w'", "negative");
        Fails(Raw("nullshape.safetensors", """{"w":{"dtype":"F32","shape":[null],"data_offsets":[0,4]}}""", new byte[4]), "'w'");
        Fails(Raw("strshape.safetensors", """{"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}""", new byte[8]), "'w'");
        Fails(Raw("offsets3.safetensors", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", new byte[8]), "'w'", "two");
        Fails(Raw("entry.safetensors", """{"w":[1,2]}""", new byte[8]), "'w'");
        Fails(Raw("dup.safetensors", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", new byte[4]), "'w'");
    }

    [Fact]
    public void MissingFile() => Fails(PathOf("nope.safetensors"), "not found");

    private sealed class Tiny : Module
    {
        public Tiny()
        {
            RegisterModule("fc", new Linear(3, 2, generator: new Generator(1)));
            RegisterModule("norm", new LayerNorm(2));
        }
    }

    [Fact]
    public void LoadStateDictNamesTheFileAndEveryBadTensor()
    {
        var good = PathOf("tiny.safetensors");
        var model = new Tiny();
        model.Save(good);
        var other = new Tiny();
        foreach (var p in other.Parameters()) Assert.NotNull(p); // fresh model, then load
        other.Load(good);
        Assert.Equal(model.StateDict()["fc.weight"].ToArray(), other.StateDict()["fc.weight"].ToArray());

        var state = model.StateDict();
        var broken = new Dictionary<string, Tensor>(state);
        broken.Remove("norm.bias");                                   // missing
        broken["fc.extra"] = Tensor.Zeros(1);                          // unexpected
        broken["fc.weight"] = Tensor.Zeros(3, 2);                     // wrong shape
        broken["norm.weight"] = Tensor.FromArray(new[] { 1, 1 });      // wrong dtype
        var path = PathOf("broken.safetensors");
        SafeTensors.Save(path, broken);
        var e = Assert.Throws<CheckpointException>(() => new Tiny().Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("missing tensor 'norm.bias'", e.Message);
        Assert.Contains("unexpected tensor 'fc.extra'", e.Message);
        Assert.Contains("'fc.weight'", e.Message);
        Assert.Contains("[3, 2]", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("'norm.weight'", e.Message);

        // Non-strict loading skips missing and unexpected names but still refuses a shape mismatch.
        var partial = new Dictionary<string, Tensor> { ["fc.bias"] = Tensor.Full(3f, 2), ["other"] = Tensor.Zeros(1) };
        var m = new Tiny();
        m.LoadStateDict(partial, strict: false);
        Assert.Equal(new float[] { 3, 3 }, m.StateDict()["fc.bias"].ToArray());
        Assert.Throws<CheckpointException>(() => m.LoadStateDict(new Dictionary<string, Tensor> { ["fc.bias"] = Tensor.Zeros(3) }, strict: false, source: "x.safetensors"));
    }
}
