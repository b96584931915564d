package phototox;

import java.util.LinkedHashMap;
import java.util.Map;

/** The numbers and the map phototox returns for one frame. */
public final class Result {
    public final Map<String, String> values;
    public final float[] map;
    public final int width;
    public final int height;

    Result(String line, float[] map, int width, int height) {
        this.values = parse(line);
        this.map = map;
        this.width = width;
        this.height = height;
    }

    /** Parse {@code key=value;key=value}. */
    static Map<String, String> parse(String line) {
        Map<String, String> out = new LinkedHashMap<>();
        if (line == null) return out;
        for (String part : line.split(";")) {
            int eq = part.indexOf('=');
            if (eq > 0) out.put(part.substring(0, eq).trim(), part.substring(eq + 1).trim());
        }
        return out;
    }

    public double number(String key) {
        String v = values.get(key);
        if (v == null) throw new IllegalStateException("phototox returned no " + key);
        return Double.parseDouble(v);
    }

    public String text(String key) {
        String v = values.get(key);
        return v == null ? "" : v;
    }

    /** The result line again, as handed back to macros by {@code call("phototox.Phototox.measure", ...)}. */
    public String line() {
        StringBuilder b = new StringBuilder();
        for (Map.Entry<String, String> e : values.entrySet()) {
            if (b.length() > 0) b.append(';');
            b.append(e.getKey()).append('=').append(e.getValue());
        }
        return b.toString();
    }
}
