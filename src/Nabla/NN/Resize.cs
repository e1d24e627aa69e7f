namespace Nabla.NN;

/// <summary>Resizes images (N, C, H, W) to a fixed height and width by bilinear interpolation (<see cref="F.Interpolate"/>),
/// like PyTorch's <c>nn.Upsample(size, mode="bilinear")</c>: the input adapter that brings small images to the size a
/// pretrained network was trained on.</summary>
public sealed class Resize(int height, int width) : Module
{
    public int Height { get; } = height > 0 && width > 0 ? height : throw new ArgumentException($"Resize: the size {height}×{width} must be positive.");
    public int Width { get; } = width;

    public override Tensor Forward(Tensor input) => F.Interpolate(input, Height, Width);
    protected override string Describe() => $"size=({Height}, {Width}), mode=bilinear";
}
