<%--
  /jw/web/console/home: login required (else redirect to /jw/web/login); footer links to the License page.
--%><%@ page session="false" contentType="text/html; charset=UTF-8" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%
    String ctx = request.getContextPath();
    String user = currentUser(request);
    if (user == null) {
        response.sendRedirect(ctx + "/web/login");
        return;
    }
    String version = standinVersion(application);
%><!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>Joget DX - Console (stand-in)</title>
<style>body{font-family:sans-serif;margin:3em}#footer{margin-top:3em;border-top:1px solid #ccc;padding-top:1em;color:#555}</style>
</head>
<body>
<h1>Joget DX <%= html(majorVersion(version)) %> Enterprise Edition (stand-in)</h1>
<p>Welcome, <span id="username"><%= html(user) %></span>.
   <a id="logout" href="<%= html(ctx) %>/j_spring_security_logout">Logout</a></p>
<p>Node <span id="nodeName"><%= html(nodeName()) %></span>, version <span id="version"><%= html(version) %></span>.</p>
<div id="footer">
  Joget DX v<%= html(version) %> (stand-in) |
  <a id="footerLicense" href="<%= html(ctx) %>/web/console/setting/license">License</a>
</div>
</body>
</html>
