package phototox;

import ij.IJ;
import ij.Macro;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.plugin.PlugIn;

import java.util.List;

/**
 * Plugins>Phototox>Measure Phototoxicity. Recordable: {@code run("Measure Phototoxicity",
 * "stride=32 mode=dense threshold=0.5");} Options: stride, mode (dense|exact),
 * threshold, model (absent or empty: the model the server or bridge was started with; else the
 * shipped default, a .pt file, a bioimage.io package or zoo id), device,
 * server (URL of 'phototox serve'), token, and the flag 'stack' to analyse every slice.
 */
public class Measure_Phototoxicity implements PlugIn {
    /** Must equal phototox.defaults.DEFAULT_STRIDE (checked by tests/test_fiji_frontend.py). */
    static final int DEFAULT_STRIDE = 32;

    @Override
    public void run(String arg) {
        if ("status".equals(arg)) {
            IJ.log("phototox: " + Phototox.route() + "; " + Phototox.status());
            return;
        }
        String options = Macro.getOptions();
        if (options == null) {
            options = askOptions();
            if (options == null) return;
        }
        try {
            List<Result> results = Phototox.analyse(WindowManager.getCurrentImage(), options);
            Phototox.show(WindowManager.getCurrentImage(), results, options);
        } catch (PhototoxException e) {
            Phototox.fail(e.getMessage());
        } catch (RuntimeException e) {
            Phototox.fail("internal error: " + e);
        }
    }

    private static String askOptions() {
        GenericDialog gd = new GenericDialog(Phototox.COMMAND);
        gd.addNumericField("Stride (px)", DEFAULT_STRIDE, 0);
        gd.addChoice("Mode", new String[]{"dense", "exact"}, "dense");
        gd.addNumericField("Threshold", 0.5, 2);
        gd.addStringField("Model (empty: the route's own)", "", 30);
        gd.addMessage("Empty model = " + Phototox.defaultModel());
        gd.addChoice("Device", new String[]{"auto", "cpu", "cuda"}, "auto");
        gd.addCheckbox("Every slice of a stack", false);
        gd.addMessage("Route: " + Phototox.route());
        gd.showDialog();
        if (gd.wasCanceled()) return null;
        String model = gd.getNextString().trim();
        StringBuilder b = new StringBuilder();
        b.append("stride=").append((int) gd.getNextNumber());
        b.append(" mode=").append(gd.getNextChoice());
        b.append(" threshold=").append(gd.getNextNumber());
        if (!model.isEmpty()) b.append(" model=").append(model.contains(" ") ? "[" + model + "]" : model);
        b.append(" device=").append(gd.getNextChoice());
        if (gd.getNextBoolean()) b.append(" stack");
        return b.toString();
    }
}
