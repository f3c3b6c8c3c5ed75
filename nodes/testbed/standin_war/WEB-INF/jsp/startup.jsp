<%--
  Loaded at deployment (load-on-startup in web.xml, never mapped to a URL): jspInit registers this
  node in servers.json and logs a database check; jspDestroy (undeploy/shutdown) unregisters it.
--%><%@ page session="false" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%!
    public void jspInit() {
        jakarta.servlet.ServletContext ctx = getServletConfig().getServletContext();
        String node = nodeName();
        double delay = standinStartDelay(ctx);
        if (delay > 0) {
            // Like Joget's start-up: Tomcat opens its HTTP port only once the web application has started.
            ctx.log("Joget stand-in: starting (" + delay + " s start-up delay)");
            try {
                Thread.sleep((long) (delay * 1000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        ctx.log("Joget stand-in " + standinVersion(ctx) + " build " + standinBuild(ctx) + ": node " + node
                + ", wflow home " + wflowHome());
        try {
            ctx.log("Joget stand-in: servers.json now lists " + updateServers(node, true));
        } catch (Exception e) {
            ctx.log("Joget stand-in: cannot update servers.json: " + e);
        }
        Datasource ds = readDatasource();
        ctx.log("Joget stand-in: datasource profile " + ds.profile + ", database " + checkDatabase(ds));
    }

    public void jspDestroy() {
        try {
            updateServers(nodeName(), false);
        } catch (Exception e) {
            // shutting down: nothing more to do
        }
        // Deregister the JDBC driver this web application loaded (avoids Tomcat's leak warning).
        ClassLoader webapp = getServletConfig().getServletContext().getClassLoader();
        for (Enumeration<Driver> e = DriverManager.getDrivers(); e.hasMoreElements();) {
            Driver d = e.nextElement();
            if (d.getClass().getClassLoader() == webapp) {
                try {
                    DriverManager.deregisterDriver(d);
                } catch (SQLException ex) {
                    // ignore
                }
            }
        }
    }
%><% response.sendError(404); %>
