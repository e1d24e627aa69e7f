using Nabla.NN;

namespace Nabla.Models.Vision;

/// <summary>
/// Splits an image into P×P patches and projects each to a D-vector: a convolution with a P×P kernel and stride
/// P is exactly a linear map applied to every non-overlapping patch (timm's <c>patch_embed.proj</c>).
/// </summary>
public sealed class PatchEmbedding : Module
{
    public int PatchSize { get; }

    public PatchEmbedding(int inChannels, int dim, int patchSize)
    {
        PatchSize = patchSize;
        RegisterModule("proj", new Conv2d(inChannels, dim, patchSize, stride: patchSize));
    }

    /// <summary>(B, C, H, W) images → (B, N, D) patch vectors, N = (H/P)·(W/P) in row-major order.</summary>
    public override Tensor Forward(Tensor images)
    {
        if (images.Rank != 4 || images.Size(2) % PatchSize != 0 || images.Size(3) % PatchSize != 0)
            throw new ArgumentException($"Patch embedding: images must be (batch, channels, height, width) with sides divisible by the patch size {PatchSize}, got {images.ShapeString}.");
        return ForwardChild("proj", images).Flatten(2).Transpose(1, 2); // (B, D, H/P, W/P) → (B, N, D)
    }
}

/// <summary>
/// The Vision Transformer (Dosovitskiy et al., 2021, "An image is worth 16×16 words"): the image becomes a
/// sequence of patch embeddings, a learned class token is put in front, learned position embeddings are added,
/// a stack of pre-norm transformer encoder blocks (non-causal multi-head self-attention and a GELU MLP) mixes
/// them, and the class token's final state, layer-normed, goes through a linear head.
/// The blocks are the same <see cref="TransformerBlock"/> GPT-2 uses (with causal: false), so they carry GPT-2's
/// names (blocks.N.ln_1, blocks.N.attn.c_attn, ...); <see cref="FromTimmName"/> maps timm's names onto them, and
/// <see cref="LoadTimmStateDict"/> loads a timm state dict (cls_token, pos_embed, patch_embed.proj,
/// blocks.N.norm1, blocks.N.attn.qkv, ..., norm, head).
/// </summary>
public sealed class VisionTransformer : Module
{
    public int ImageSize { get; }
    public int PatchSize { get; }
    public int Dim { get; }
    public Tensor ClassToken { get; }
    public Tensor PositionEmbedding { get; }
    private readonly string[] _blockNames;

    /// <param name="mlpHidden">Width of each block's MLP (default 4·dim).</param>
    /// <param name="layerNormEps">1e-6, as timm and torchvision's ViTs use.</param>
    public VisionTransformer(int imageSize, int patchSize, int dim, int depth, int heads, int numClasses,
        int inChannels = 3, int? mlpHidden = null, float layerNormEps = 1e-6f, Generator? generator = null)
    {
        if (imageSize <= 0 || patchSize <= 0 || imageSize % patchSize != 0)
            throw new ArgumentException($"ViT: the image size {imageSize} must be a positive multiple of the patch size {patchSize}.");
        if (dim <= 0 || depth <= 0 || heads <= 0 || dim % heads != 0 || numClasses <= 0)
            throw new ArgumentException($"ViT: dim {dim} must split into {heads} heads; depth {depth} and classes {numClasses} must be positive.");
        ImageSize = imageSize;
        PatchSize = patchSize;
        Dim = dim;
        int patches = imageSize / patchSize * (imageSize / patchSize);
        var g = generator ?? Generator.Default;
        ClassToken = Init.Normal(RegisterParameter("cls_token", Tensor.Zeros(1, 1, dim)), 0, 1e-6f, g);
        PositionEmbedding = Init.Normal(RegisterParameter("pos_embed", Tensor.Zeros(1, patches + 1, dim)), 0, 0.02f, g);
        RegisterModule("patch_embed", new PatchEmbedding(inChannels, dim, patchSize));
        var blocks = RegisterModule("blocks", new Sequential());
        for (int i = 0; i < depth; i++)
            blocks.Add(new TransformerBlock(dim, heads, layerNormEps, causal: false, mlpHidden: mlpHidden ?? 4 * dim, gelu: GeluApproximation.None));
        _blockNames = Enumerable.Range(0, depth).Select(i => $"blocks.{i}").ToArray();
        RegisterModule("norm", new LayerNorm(dim, layerNormEps));
        RegisterModule("head", new Linear(dim, numClasses, generator: g));
    }

    /// <summary>Logits (B, classes) for images (B, C, H, W) of the configured size.</summary>
    public override Tensor Forward(Tensor images)
    {
        if (images.Rank != 4 || images.Size(2) != ImageSize || images.Size(3) != ImageSize)
            throw new ArgumentException($"ViT: images must be (batch, channels, {ImageSize}, {ImageSize}), got {images.ShapeString}.");
        int B = images.Size(0);
        var patches = ForwardChild("patch_embed", images);                              // (B, N, D)
        var x = Tensor.Concat([ClassToken.Expand(B, 1, Dim), patches], 1);             // (B, 1 + N, D)
        x = x.Add(PositionEmbedding);
        foreach (var block in _blockNames) x = ForwardChild(block, x);
        x = ForwardChild("norm", x);
        return ForwardChild("head", x.Select(1, 0));                                   // class token → (B, classes)
    }

    private static readonly (string Timm, string Nabla)[] BlockNames =
    [
        ("norm1", "ln_1"), ("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"),
        ("norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"),
    ];

    /// <summary>The name in this model of a timm ViT tensor (blocks.3.attn.qkv.weight → blocks.3.attn.c_attn.weight);
    /// names outside the blocks are the same in both.</summary>
    public static string FromTimmName(string name)
    {
        var parts = name.Split('.', 3);
        if (parts.Length < 3 || parts[0] != "blocks") return name;
        foreach (var (timm, nabla) in BlockNames)
            if (parts[2].StartsWith(timm + ".", StringComparison.Ordinal))
                return $"blocks.{parts[1]}.{nabla}{parts[2][timm.Length..]}";
        return name;
    }

    /// <summary>Loads a state dict in timm's names (strict by default; errors name the timm tensors' mapped names).</summary>
    public void LoadTimmStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true, string? source = null) =>
        LoadStateDict(state.ToDictionary(kv => FromTimmName(kv.Key), kv => kv.Value), strict, source);
}
