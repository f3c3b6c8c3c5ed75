<%--
  GET /jw/web/json/workflow/currentUsername: {"username":"roleAnonymous"} or the logged-in user.
  Like Joget's JSON API; never creates a session, so probes do not fill the session store.
  Also re-adds this node to servers.json if it went missing.
--%><%@ page session="false" contentType="application/json; charset=UTF-8" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%
    try {
        updateServers(nodeName(), true);
    } catch (IOException e) {
        application.log("Joget stand-in: cannot update servers.json: " + e);
    }
    String user = currentUser(request);
    response.setHeader("Cache-Control", "no-store");
    out.print("{\"username\":" + json(user == null ? ANONYMOUS : user) + "}");
%>
