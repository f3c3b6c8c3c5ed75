<%--
  /jw/testbed/session (stand-in only): one line "node=<jvmRoute> count=<n> build=<sha8> db=<ok|error>"
  (the database error last: it may hold spaces).
  The count is an Integer session attribute, set again on every request so replication ships it.
--%><%@ page session="false" contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%
    jakarta.servlet.http.HttpSession s = request.getSession(true);
    Object previous = s.getAttribute(SESSION_COUNT);
    int count = previous instanceof Integer ? ((Integer) previous).intValue() + 1 : 1;
    s.setAttribute(SESSION_COUNT, Integer.valueOf(count));
    String node = System.getProperty("wflow.name");
    if (node == null || node.trim().isEmpty()) {
        node = System.getProperty("jvmRoute");
    }
    if (node == null || node.trim().isEmpty()) {
        String id = s.getId();
        int dot = id.indexOf('.');
        node = dot >= 0 ? id.substring(dot + 1) : hostName();
    }
    response.setHeader("Cache-Control", "no-store");
    out.print("node=" + node.trim() + " count=" + count + " build=" + standinBuild(application)
              + " db=" + checkDatabase(readDatasource()) + "\n");
%>
