package phototox;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UnsupportedEncodingException;
import java.net.ConnectException;
import java.net.HttpURLConnection;
import java.net.SocketTimeoutException;
import java.net.URL;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The out-of-process route: POST a frame to {@code phototox serve} and read back the map.
 * Java 8 API only (HttpURLConnection): the jar is built for Java 8 bytecode, as Fiji still runs on 8.
 */
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
            if (v != null) query.append('&').append(key).append('=').append(encode(v));
        }
        ByteBuffer body = ByteBuffer.allocate(4 * pixels.length).order(ByteOrder.LITTLE_ENDIAN);
        body.asFloatBuffer().put(pixels);
        int status;
        byte[] bytes;
        String line;
        HttpURLConnection connection = null;
        try {
            connection = (HttpURLConnection) new URL(server + "/v1/analyse?" + query).openConnection();
            connection.setConnectTimeout(5000);
            connection.setReadTimeout(1000 * Options.getInt(options, "timeout", 600));
            connection.setRequestMethod("POST");
            connection.setDoOutput(true);
            connection.setFixedLengthStreamingMode(body.capacity());
            connection.setRequestProperty("Content-Type", "application/octet-stream");
            String token = token(options);
            if (!token.isEmpty()) connection.setRequestProperty("Authorization", "Bearer " + token);
            OutputStream out = connection.getOutputStream();
            try {
                out.write(body.array());
            } finally {
                out.close();
            }
            status = connection.getResponseCode();
            bytes = readAll(status == 200 ? connection.getInputStream() : connection.getErrorStream());
            line = connection.getHeaderField("X-Phototox-Result");
        } catch (ConnectException e) {
            throw new PhototoxException("the phototox server at " + server + " is not running (connection refused); "
                    + "start it with 'phototox serve' or run ImageJ through 'phototox fiji'");
        } catch (SocketTimeoutException e) {
            throw new PhototoxException("the phototox server at " + server + " did not answer in time");
        } catch (IOException e) {
            throw new PhototoxException("cannot reach the phototox server at " + server + ": " + e);
        } finally {
            if (connection != null) connection.disconnect();
        }
        if (status != 200) {
            String message = new String(bytes, StandardCharsets.UTF_8).trim();
            throw new PhototoxException(message.isEmpty() ? "phototox server answered HTTP " + status : message);
        }
        if (bytes.length != 4L * width * height) {
            throw new PhototoxException("phototox server sent a map of " + bytes.length + " bytes, expected " + (4L * width * height));
        }
        float[] map = new float[width * height];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(map);
        return new Result(line == null ? "" : line, map, width, height);
    }

    private static String encode(String value) {
        try {
            return URLEncoder.encode(value, "UTF-8");
        } catch (UnsupportedEncodingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] readAll(InputStream in) throws IOException {
        if (in == null) return new byte[0];
        try {
            ByteArrayOutputStream buffer = new ByteArrayOutputStream();
            byte[] chunk = new byte[1 << 16];
            int n;
            while ((n = in.read(chunk)) > 0) buffer.write(chunk, 0, n);
            return buffer.toByteArray();
        } finally {
            in.close();
        }
    }

    static String status(String options) {
        String server = serverUrl(options);
        HttpURLConnection connection = null;
        try {
            connection = (HttpURLConnection) new URL(server + "/v1/status").openConnection();
            connection.setConnectTimeout(3000);
            connection.setReadTimeout(5000);
            int code = connection.getResponseCode();
            if (code != 200) return "error: HTTP " + code;
            return new String(readAll(connection.getInputStream()), StandardCharsets.UTF_8).trim();
        } catch (Exception e) {
            return "error: the phototox server at " + server + " is not reachable (" + e.getClass().getSimpleName() + ")";
        } finally {
            if (connection != null) connection.disconnect();
        }
    }
}
