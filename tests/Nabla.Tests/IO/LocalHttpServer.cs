using System.Net;

namespace Nabla.Tests.IO;

/// <summary>An HTTP server on 127.0.0.1 for download tests: each request goes to <c>handle</c> with the path
/// (without the leading slash); the handler writes the response and may misbehave on purpose (stall, cut off).</summary>
public sealed class LocalHttpServer : IDisposable
{
    private readonly HttpListener _listener = new();
    public string Url { get; }

    public LocalHttpServer(Func<string, HttpListenerResponse, Task> handle)
    {
        for (int attempt = 0; ; attempt++)
        {
            int port = Random.Shared.Next(20000, 60000);
            Url = $"http://127.0.0.1:{port}/";
            _listener.Prefixes.Clear();
            _listener.Prefixes.Add(Url);
            try { _listener.Start(); break; }
            catch (HttpListenerException) when (attempt < 10) { }
        }
        Task.Run(async () =>
        {
            while (_listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await _listener.GetContextAsync(); } catch { return; }
                _ = Task.Run(async () =>
                {
                    try { await handle(ctx.Request.Url!.AbsolutePath.TrimStart('/'), ctx.Response); ctx.Response.Close(); }
                    catch { ctx.Response.Abort(); }
                });
            }
        });
    }

    /// <summary>A handler serving fixed bodies by name (404 for others).</summary>
    public static Func<string, HttpListenerResponse, Task> Files(Func<string, byte[]?> body) => async (name, response) =>
    {
        if (body(name) is not { } bytes) { response.StatusCode = 404; return; }
        response.ContentLength64 = bytes.Length;
        await response.OutputStream.WriteAsync(bytes);
    };

    public void Dispose() => _listener.Stop();
}
