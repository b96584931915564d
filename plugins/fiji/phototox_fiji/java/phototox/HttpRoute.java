package phototox;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/** The out-of-process route: POST a frame to {@code phototox serve} and read back the map. */
final class HttpRoute {
    static final String DEFAULT_SERVER = "http://127.0.0.1:8765";

    private HttpRoute() {
    }

    static String serverUrl(String options) {
        String fromOptions = Options.get(options, "server", null);
        if (fromOptions != null && !fromOptions.isEmpty()) return stripSlash(fromOptions);
        String prop = System.getProperty("phototox.server");
        if (prop != null && !prop.isEmpty()) return stripSlash(prop);
        String env = System.getenv("PHOTOTOX_SERVER");
        if (env != null && !env.isEmpty()) return stripSlash(env);
        return DEFAULT_SERVER;
    }

    private static String stripSlash(String url) {
        return url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
    }

    private static String token(String options) {
        String t = Options.get(options, "token", null);
        if (t == null || t.isEmpty()) t = System.getenv("PHOTOTOX_TOKEN");
        return t == null ? "" : t;
    }

    static Result analyse(float[] pixels, int width, int height, String options) throws PhototoxException {
        String server = serverUrl(options);
        StringBuilder query = new StringBuilder("width=" + width + "&height=" + height);
        for (String key : Options.FORWARDED) {
            String v = Options.get(options, key, null);
            if (v != null) query.append('&').append(key).append('=').append(URLEncoder.encode(v, StandardCharsets.UTF_8));
        }
        ByteBuffer body = ByteBuffer.allocate(4 * pixels.length).order(ByteOrder.LITTLE_ENDIAN);
        body.asFloatBuffer().put(pixels);
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(server + "/v1/analyse?" + query))
                .timeout(Duration.ofSeconds(Options.getInt(options, "timeout", 600)))
                .header("Content-Type", "application/octet-stream")
                .POST(HttpRequest.BodyPublishers.ofByteArray(body.array()));
        String token = token(options);
        if (!token.isEmpty()) request.header("Authorization", "Bearer " + token);
        HttpResponse<byte[]> response;
        try {
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
            response = client.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (ConnectException e) {
            throw new PhototoxException("the phototox server at " + server + " is not running (connection refused); "
                    + "start it with 'phototox serve' or run ImageJ through 'phototox fiji'");
        } catch (HttpTimeoutException e) {
            throw new PhototoxException("the phototox server at " + server + " did not answer in time");
        } catch (IOException e) {
            throw new PhototoxException("cannot reach the phototox server at " + server + ": " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new PhototoxException("interrupted while waiting for the phototox server");
        }
        if (response.statusCode() != 200) {
            String message = new String(response.body(), StandardCharsets.UTF_8).trim();
            throw new PhototoxException(message.isEmpty() ? "phototox server answered HTTP " + response.statusCode() : message);
        }
        String line = response.headers().firstValue("X-Phototox-Result").orElse("");
        byte[] bytes = response.body();
        if (bytes.length != 4L * width * height) {
            throw new PhototoxException("phototox server sent a map of " + bytes.length + " bytes, expected " + (4L * width * height));
        }
        float[] map = new float[width * height];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(map);
        return new Result(line, map, width, height);
    }

    static String status(String options) {
        String server = serverUrl(options);
        try {
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(server + "/v1/status"))
                    .timeout(Duration.ofSeconds(5)).GET().build(), HttpResponse.BodyHandlers.ofString());
            return r.statusCode() == 200 ? r.body().trim() : "error: HTTP " + r.statusCode();
        } catch (Exception e) {
            return "error: the phototox server at " + server + " is not reachable (" + e.getClass().getSimpleName() + ")";
        }
    }
}
