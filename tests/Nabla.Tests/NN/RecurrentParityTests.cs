using Nabla.NN;
using Nabla.Tests.Parity;
using Close = Nabla.Tests.Ops.Close;

namespace Nabla.Tests.NN;

/// <summary>
/// RNN (tanh, relu), LSTM and GRU against PyTorch 1.13's torch.nn layers (tests/reference/make_rnn_fixtures.py):
/// each case loads PyTorch's state dict strictly, runs the same input (and initial states, and for packed cases the
/// same lengths as pack_padded_sequence(enforce_sorted=False)), and compares the output, the final states and the
/// gradients of a fixed scalar loss with respect to the input, the initial states and every parameter.
/// </summary>
public class RecurrentParityTests
{
    private const string FixtureFile = "rnn_layers.safetensors";
    private static ParityFixture Fixture => ParityFixture.Get(FixtureFile);

    public static TheoryData<string> Cases() =>
        new(ParityFixture.Get(FixtureFile).Metadata.Keys.Where(k => k is not ("torch" or "source")).Order());

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesPyTorch(string name)
    {
        var settings = Fixture.Meta(name);
        string mode = settings.GetProperty("mode").GetString()!;
        int inputSize = settings.GetProperty("input_size").GetInt32(), hiddenSize = settings.GetProperty("hidden_size").GetInt32();
        int numLayers = settings.GetProperty("num_layers").GetInt32();
        bool bias = settings.GetProperty("bias").GetBoolean(), batchFirst = settings.GetProperty("batch_first").GetBoolean();
        bool bidirectional = settings.GetProperty("bidirectional").GetBoolean();
        var lengthsJson = settings.GetProperty("lengths");
        int[]? lengths = lengthsJson.ValueKind == System.Text.Json.JsonValueKind.Null ? null : lengthsJson.EnumerateArray().Select(e => e.GetInt32()).ToArray();

        RecurrentBase layer = mode switch
        {
            "RNN" => new RNN(inputSize, hiddenSize, numLayers,
                settings.GetProperty("nonlinearity").GetString() == "relu" ? RnnNonlinearity.Relu : RnnNonlinearity.Tanh,
                bias, batchFirst, 0f, bidirectional),
            "LSTM" => new LSTM(inputSize, hiddenSize, numLayers, bias, batchFirst, 0f, bidirectional, settings.GetProperty("proj_size").GetInt32()),
            "GRU" => new GRU(inputSize, hiddenSize, numLayers, bias, batchFirst, 0f, bidirectional),
            _ => throw new InvalidOperationException(mode),
        };
        const string stateDictPrefix = "/sd/";
        layer.LoadStateDict(Fixture.Tensors.Where(t => t.Key.StartsWith(name + stateDictPrefix))
            .ToDictionary(t => t.Key[(name.Length + stateDictPrefix.Length)..], t => t.Value)); // strict

        var x = Fixture.Fresh(name + "/x").RequiresGrad_();
        var h0 = Fixture.Has(name + "/h0") ? Fixture.Fresh(name + "/h0").RequiresGrad_() : null;
        var c0 = Fixture.Has(name + "/c0") ? Fixture.Fresh(name + "/c0").RequiresGrad_() : null;
        Tensor output, hidden;
        Tensor? cell = null;
        if (layer is LSTM lstm) (output, hidden, cell) = lstm.Forward(x, h0, c0, lengths);
        else if (layer is GRU gru) (output, hidden) = gru.Forward(x, h0, lengths);
        else (output, hidden) = ((RNN)layer).Forward(x, h0, lengths);

        var loss = output.Mul(Fixture[name + "/dout"]).Sum().Add(hidden.Mul(Fixture[name + "/dhn"]).Sum());
        if (cell != null) loss = loss.Add(cell.Mul(Fixture[name + "/dcn"]).Sum());
        loss.Backward();

        const double tolerance = 1e-5;
        Close.Assert(Fixture[name + "/out"], output, tolerance, name + " output", tolerance);
        Close.Assert(Fixture[name + "/hn"], hidden, tolerance, name + " h_n", tolerance);
        if (cell != null) Close.Assert(Fixture[name + "/cn"], cell, tolerance, name + " c_n", tolerance);
        Close.Assert(Fixture[name + "/grad_x"], x.Grad!, tolerance, name + " grad x", tolerance);
        if (h0 != null) Close.Assert(Fixture[name + "/grad_h0"], h0.Grad!, tolerance, name + " grad h0", tolerance);
        if (c0 != null) Close.Assert(Fixture[name + "/grad_c0"], c0.Grad!, tolerance, name + " grad c0", tolerance);
        var parameterNames = layer.NamedParameters().Select(p => p.Name).ToList();
        Assert.Equal(Fixture.Tensors.Keys.Where(k => k.StartsWith(name + "/grad/")).Select(k => k[(name.Length + "/grad/".Length)..]).Order(),
            parameterNames.Order());
        foreach (var (parameterName, parameter) in layer.NamedParameters())
            Close.Assert(Fixture[name + "/grad/" + parameterName], parameter.Grad!, tolerance, $"{name} grad {parameterName}", tolerance);
    }
}
