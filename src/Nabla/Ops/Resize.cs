namespace Nabla;

public static partial class F
{
    /// <summary>
    /// Bilinear resizing of images x (N, C, H, W) to (N, C, <paramref name="height"/>, <paramref name="width"/>), as
    /// PyTorch's <c>F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)</c> (no
    /// antialiasing). Bilinear interpolation is separable and linear, so it is two matrix products,
    /// y = R_H · x · R_Wᵀ, with R (out, in) holding each output pixel's two interpolation weights: the forward and
    /// the backward (R_Hᵀ · dy · R_W) are GEMMs, and no kernel of its own is needed.
    /// </summary>
    public static Tensor Interpolate(Tensor x, int height, int width)
    {
        if (x.Rank != 4) throw new ArgumentException($"Interpolate: expected images (batch, channels, height, width), got {x.ShapeString}.");
        if (height <= 0 || width <= 0) throw new ArgumentException($"Interpolate: the output size {height}×{width} must be positive.");
        if (x.Size(2) == 0 || x.Size(3) == 0) throw new ArgumentException($"Interpolate: cannot resize an empty image {x.ShapeString}.");
        var rows = InterpolationMatrix(x.Size(2), height).To(x.Device);   // (H', H)
        var columns = InterpolationMatrix(x.Size(3), width).To(x.Device); // (W', W)
        return rows.MatMul(x).MatMul(columns.T);             // (N, C, H', W)·(W, W') → (N, C, H', W')
    }

    /// <summary>The (output, input) matrix of 1-D linear interpolation with half-pixel centres (align_corners=False):
    /// output pixel o samples the input at s = (o + ½)·in/out − ½, clamped below at 0, between pixels ⌊s⌋ and
    /// min(⌊s⌋ + 1, in − 1) — PyTorch's area_pixel_compute_source_index for a given output size.</summary>
    private static Tensor InterpolationMatrix(int input, int output)
    {
        var weights = new float[output * input];
        float scale = (float)input / output; // in float, as PyTorch computes it, so the weights round alike
        for (int o = 0; o < output; o++)
        {
            float source = MathF.Max(scale * (o + 0.5f) - 0.5f, 0f);
            int low = Math.Min((int)source, input - 1), high = Math.Min(low + 1, input - 1);
            float lambda = source - low;
            weights[o * input + low] += 1f - lambda;
            weights[o * input + high] += lambda;
        }
        return Tensor.FromArray(weights, output, input);
    }
}
