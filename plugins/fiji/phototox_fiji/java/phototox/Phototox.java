package phototox;

import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.WindowManager;
import ij.macro.Interpreter;
import ij.measure.ResultsTable;
import ij.process.FloatProcessor;
import ij.process.ImageProcessor;

import java.util.ArrayList;
import java.util.List;

/**
 * The phototox bridge for ImageJ macros and plugins.
 *
 * <p>Macros call {@code run("Measure Phototoxicity", "stride=32 mode=dense")} (menu command) or
 * {@code call("phototox.Phototox.measure", "stride=32 mode=dense")}, which returns the result line
 * or a line starting with {@code error:}. Both analyse the current image with the Python model:
 * in-process when Python has registered a handler ({@code phototox fiji}, pyimagej), otherwise
 * through a {@code phototox serve} HTTP server.</p>
 */
public final class Phototox {
    public static final String COMMAND = "Measure Phototoxicity";
    private static volatile PhototoxHandler handler;
    private static volatile String lastError = "";
    private static volatile String lastResult = "";
    private static final java.util.concurrent.atomic.AtomicInteger FAILURES = new java.util.concurrent.atomic.AtomicInteger();

    private Phototox() {
    }

    /** Register (or with null, remove) the in-process Python handler. */
    public static void setHandler(PhototoxHandler h) {
        handler = h;
    }

    /** "in-process" or "server URL": where the next analysis will run. */
    public static String route(String options) {
        if (handler != null && Options.get(options, "server", null) == null) return "in-process";
        return "server " + HttpRoute.serverUrl(options);
    }

    public static String route() {
        return route("");
    }

    public static String lastError() {
        return lastError;
    }

    public static String lastResult() {
        return lastResult;
    }

    /** How many menu-command runs stopped with an error (a macro launcher's exit status). */
    public static int failures() {
        return FAILURES.get();
    }

    /** The model used when a call names none: the bridge's (property phototox.model) or the server's. */
    public static String defaultModel() {
        if (handler != null) return System.getProperty("phototox.model", "the model phototox fiji was started with");
        String status = HttpRoute.status("");
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"model\"\\s*:\\s*\"([^\"]*)\"").matcher(status);
        return m.find() ? m.group(1) + " (server)" : "the server's model (" + status + ")";
    }

    /** Server status line, or "error: ..." (macro: call("phototox.Phototox.status")). */
    public static String status() {
        return handler != null ? "in-process handler registered" : HttpRoute.status("");
    }

    /** Macro entry point: analyse the current image, show map and results; return the result line or "error: ...". */
    public static String measure(String options) {
        try {
            ImagePlus imp = WindowManager.getCurrentImage();
            show(imp, analyse(imp, options), options);
            lastError = "";
            return lastResult;
        } catch (PhototoxException e) {
            lastError = e.getMessage();
            return "error: " + e.getMessage();
        } catch (RuntimeException e) {  // never let a bug take the macro (or the JVM) down
            lastError = "internal error: " + e;
            return "error: " + lastError;
        }
    }

    /** Analyse every frame to be processed (one, or each slice with 'stack'; one channel of a hyperstack). */
    public static List<Result> analyse(ImagePlus imp, String options) throws PhototoxException {
        checkImage(imp, options);
        options = withCalibration(imp, options);
        List<Integer> indices = frameIndices(imp, options);
        List<Result> results = new ArrayList<>();
        ImageStack stack = imp.getStack();
        int n = indices.size();
        for (int i = 0; i < n; i++) {
            if (n > 1) IJ.showStatus("phototox: frame " + (i + 1) + "/" + n);
            ImageProcessor ip = stack.getProcessor(indices.get(i));
            float[] pixels = (float[]) ip.convertToFloatProcessor().getPixels();
            results.add(analyseFrame(pixels.clone(), ip.getWidth(), ip.getHeight(), options));
            IJ.showProgress(i + 1, n);
        }
        return results;
    }

    /** Stack indices to analyse: the current slice, every slice ('stack'), or the frames of channel=N. */
    static List<Integer> frameIndices(ImagePlus imp, String options) {
        List<Integer> out = new ArrayList<>();
        if (imp.getNChannels() > 1) {
            int c = Options.getInt(options, "channel", 1);
            if (Options.flag(options, "stack")) {
                for (int t = 1; t <= imp.getNFrames(); t++) {
                    for (int z = 1; z <= imp.getNSlices(); z++) out.add(imp.getStackIndex(c, z, t));
                }
            } else {
                out.add(imp.getStackIndex(c, imp.getSlice(), imp.getFrame()));
            }
            return out;
        }
        int n = imp.getStackSize();
        if (n > 1) {
            for (int slice = 1; slice <= n; slice++) out.add(slice);
        } else {
            out.add(imp.getCurrentSlice());
        }
        return out;
    }

    /** Add pixel_size=UM from the image's spatial calibration (in microns) unless the options give one. */
    static String withCalibration(ImagePlus imp, String options) {
        if (Options.get(options, "pixel_size", null) != null) return options;
        ij.measure.Calibration cal = imp.getCalibration();
        if (cal == null || !cal.scaled() || cal.pixelWidth <= 0) return options;
        String unit = cal.getUnit().toLowerCase();
        boolean microns = unit.equals("micron") || unit.equals("microns") || unit.equals("um")
                || unit.equals("\u00b5m") || unit.equals("\u03bcm");
        if (!microns) return options;
        return (options == null ? "" : options) + " pixel_size=" + cal.pixelWidth;
    }

    static void checkImage(ImagePlus imp, String options) throws PhototoxException {
        if (imp == null) throw new PhototoxException("no image is open; open a phase-contrast image first");
        String title = "'" + imp.getTitle() + "'";
        if (imp.getType() == ImagePlus.COLOR_RGB || imp.getType() == ImagePlus.COLOR_256) {
            throw new PhototoxException(title + " is a colour image; phototox needs a grey phase-contrast image "
                    + "(Image>Type>8-bit or 16-bit, or pick the phase channel)");
        }
        int channels = imp.getNChannels();
        if (channels > 1) {
            int c = Options.getInt(options, "channel", 0);
            if (c < 1 || c > channels) {
                throw new PhototoxException(title + " has " + channels + " channels; add channel=N (1-" + channels
                        + ") to analyse the phase-contrast channel");
            }
            int perChannel = imp.getNSlices() * imp.getNFrames();
            if (perChannel > 1 && !Options.flag(options, "stack")) {
                throw new PhototoxException(title + " has " + perChannel + " frames in channel " + c + "; add the "
                        + "'stack' option to analyse every one");
            }
            return;
        }
        if (imp.getStackSize() > 1 && !Options.flag(options, "stack")) {
            throw new PhototoxException(title + " is a stack of " + imp.getStackSize() + " slices; add the 'stack' "
                    + "option to analyse every slice, or duplicate the slice you want (Image>Duplicate...)");
        }
    }

    static Result analyseFrame(float[] pixels, int width, int height, String options) throws PhototoxException {
        PhototoxHandler h = handler;
        if (h != null && Options.get(options, "server", null) == null) {
            float[] map = new float[width * height];
            String line;
            try {
                line = h.analyse(pixels, width, height, Options.forwarded(options), map);
            } catch (Exception e) {
                throw new PhototoxException("the Python handler failed: " + e);
            }
            if (line == null) throw new PhototoxException("the Python handler returned nothing");
            if (line.startsWith("error:")) throw new PhototoxException(line.substring(6).trim());
            return new Result(line, map, width, height);
        }
        return HttpRoute.analyse(pixels, width, height, options);
    }

    /** Show the sickness map as a new 32-bit image and add one Results row per frame. */
    static ImagePlus show(ImagePlus imp, List<Result> results, String options) {
        ImageStack maps = new ImageStack(results.get(0).width, results.get(0).height);
        ResultsTable table = ResultsTable.getResultsTable();
        for (int i = 0; i < results.size(); i++) {
            Result r = results.get(i);
            maps.addSlice("P(sick)", new FloatProcessor(r.width, r.height, r.map));
            table.incrementCounter();
            table.addValue("Image", imp.getTitle());
            table.addValue("Slice", results.size() > 1 ? i + 1 : imp.getCurrentSlice());
            table.addValue("MeanSickProbability", r.number("mean_sick_probability"));
            table.addValue("SickAreaFraction", r.number("sick_area_fraction"));
            table.addValue("Class", "sick".equals(r.text("label")) ? 1 : 0);
            table.addValue("Confidence", r.number("confidence"));
            table.addValue("Label", r.text("label"));
            table.addValue("Model", r.text("model"));
            table.addValue("PixelSize_um", r.text("pixel_size_um"));
            table.addValue("PixelSizeSource", r.text("pixel_size_source"));
            table.addValue("OutOfDomain", r.text("out_of_domain"));
            table.addValue("UnlikeControlsFraction", r.text("unlike_controls_fraction"));
            table.addValue("UnlikeControlsPValue", r.text("unlike_controls_p_value"));
            lastResult = r.line();
        }
        table.show("Results");
        ImagePlus mapImp = new ImagePlus(imp.getShortTitle() + "_sickmap", maps);
        mapImp.setCalibration(imp.getCalibration());
        mapImp.getProcessor().setMinAndMax(0, 1);
        try {
            mapImp.getProcessor().setColorModel(ij.plugin.LutLoader.getLut("fire"));
        } catch (Throwable ignored) {
            // older ImageJ: keep the grey LUT
        }
        mapImp.show();
        return mapImp;
    }

    /** Report an error so that a macro sees it: in the log, in lastError(), and by aborting the macro. */
    static void fail(String message) {
        lastError = message;
        FAILURES.incrementAndGet();
        IJ.log(COMMAND + " error: " + message);
        Interpreter interpreter = Interpreter.getInstance();
        if (interpreter != null) {
            interpreter.abortMacro();
        } else if (!java.awt.GraphicsEnvironment.isHeadless() && IJ.getInstance() != null) {
            IJ.error(COMMAND, message);
        }
    }
}
